//! Pod facts shared by the API server, the controllers and the nodes, and graceful pod deletion
//! (what the API server and the kubelet do together): a pod with a grace period gets a
//! `deletionTimestamp` and is removed once it has terminated.

use super::status::ApiError;
use crate::events::kinds;
use crate::store::{self, PODS};
use crate::Shared;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

pub fn is_terminating(pod: &Value) -> bool {
    pod["metadata"]["deletionTimestamp"].is_string()
}

/// The pod's Ready condition is True.
pub fn is_ready(pod: &Value) -> bool {
    pod["status"]["conditions"]
        .as_array()
        .is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

/// The pod's QoS class from its containers' CPU and memory requests and limits, as the API
/// server sets `status.qosClass`: `Guaranteed` when every container has limits for both and
/// requests equal to them (absent requests default to the limits), `BestEffort` when none has
/// any, `Burstable` otherwise.
pub fn qos_class(spec: &Value) -> &'static str {
    let containers: Vec<&Value> = ["containers", "initContainers"]
        .iter()
        .filter_map(|k| spec[*k].as_array())
        .flatten()
        .collect();
    let value = |map: &Value, k: &str| -> Option<i128> {
        let v = &map[k];
        let text = v
            .as_str()
            .map(str::to_string)
            .or_else(|| v.as_number().map(|n| n.to_string()))?;
        crate::resources::parse_quantity(&text).ok()
    };
    let mut any = false;
    let mut guaranteed = true;
    for c in &containers {
        let (requests, limits) = (&c["resources"]["requests"], &c["resources"]["limits"]);
        for k in ["cpu", "memory"] {
            let (r, l) = (value(requests, k), value(limits, k));
            any |= r.is_some_and(|r| r != 0) || l.is_some_and(|l| l != 0);
            guaranteed &= l.is_some() && r.is_none_or(|r| Some(r) == l);
        }
    }
    match (any, guaranteed && !containers.is_empty()) {
        (false, _) => "BestEffort",
        (true, true) => "Guaranteed",
        (true, false) => "Burstable",
    }
}

pub fn phase(pod: &Value) -> &str {
    pod["status"]["phase"].as_str().unwrap_or("")
}

/// The pod `ns/pod` and the container a request names (`?container=`), chosen as the API
/// server chooses it for exec, attach and logs: the named one, or the only one when none is
/// named; otherwise 400 with kube-apiserver's message (404 when there is no such pod).
pub fn with_container(s: &Shared, ns: &str, pod: &str, named: Option<&str>) -> Result<(Value, String), ApiError> {
    let obj = s
        .store
        .get(PODS, Some(ns), pod)
        .ok_or_else(|| ApiError::not_found(&PODS, pod))?;
    let names: Vec<String> = obj["spec"]["containers"]
        .as_array()
        .map(|cs| {
            cs.iter()
                .filter_map(|c| c["name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let container = match named.filter(|c| !c.is_empty()) {
        Some(c) if names.iter().any(|n| n == c) => c.to_string(),
        Some(c) => {
            return Err(ApiError::bad_request(format!(
                "container {c} is not valid for pod {pod}"
            )))
        }
        None if names.len() == 1 => names[0].clone(),
        None => {
            return Err(ApiError::bad_request(format!(
                "a container name must be specified for pod {pod}, choose one of: [{}]",
                names.join(" ")
            )))
        }
    };
    Ok((obj, container))
}

pub fn node_name(pod: &Value) -> Option<&str> {
    pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty())
}

pub fn key(obj: &Value) -> String {
    format!(
        "{}/{}",
        obj["metadata"]["namespace"].as_str().unwrap_or(""),
        obj["metadata"]["name"].as_str().unwrap_or("")
    )
}

/// The controller owner reference (`controller: true`), if any.
pub fn controller_ref(obj: &Value) -> Option<&Value> {
    obj["metadata"]["ownerReferences"]
        .as_array()?
        .iter()
        .find(|r| r["controller"].as_bool() == Some(true))
}

/// Preconditions and options of a DELETE.
#[derive(Debug, Default, Clone)]
pub struct DeleteOpts {
    pub grace: Option<i64>,
    pub uid: Option<String>,
    pub resource_version: Option<String>,
    /// `dryRun: ["All"]` (query or body): check everything, change nothing.
    pub dry_run: bool,
}

/// Check DeleteOptions preconditions against the stored object.
pub fn check_preconditions(res: &store::Resource, obj: &Value, opts: &DeleteOpts) -> Result<(), ApiError> {
    let name = obj["metadata"]["name"].as_str().unwrap_or("");
    if let Some(uid) = opts.uid.as_deref().filter(|u| !u.is_empty()) {
        let have = obj["metadata"]["uid"].as_str().unwrap_or("");
        if uid != have {
            return Err(ApiError::conflict(
                res,
                name,
                &format!("Precondition failed: UID in precondition: {uid}, UID in object meta: {have}"),
            ));
        }
    }
    if let Some(rv) = opts.resource_version.as_deref().filter(|r| !r.is_empty()) {
        let have = obj["metadata"]["resourceVersion"].as_str().unwrap_or("");
        if rv != have {
            return Err(ApiError::conflict(
                res,
                name,
                &format!("Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {have}"),
            ));
        }
    }
    Ok(())
}

fn remove_if_same(shared: &Shared, ns: &str, name: &str, uid: &str, detail: &str) -> Option<Value> {
    let cur = shared.store.get(PODS, Some(ns), name)?;
    if cur["metadata"]["uid"].as_str() != Some(uid) {
        return None;
    }
    let obj = shared.store.remove(PODS, Some(ns), name).ok()?;
    shared.pod_logs.forget(uid);
    shared
        .events
        .record(kinds::POD_DELETED, node_name(&obj), Some(&key(&obj)), detail);
    Some(obj)
}

/// Delete a pod as the API server does: at once when it has no node, has finished or
/// the grace period is 0; otherwise mark it terminating (`deletionTimestamp`,
/// `deletionGracePeriodSeconds`) and remove it after min(grace, timing.terminationSeconds).
/// A second delete may shorten the grace period, never lengthen it.
pub fn delete_pod(shared: &Arc<Shared>, ns: &str, name: &str, opts: &DeleteOpts) -> Result<Value, ApiError> {
    let pod = shared
        .store
        .get(PODS, Some(ns), name)
        .ok_or_else(|| ApiError::not_found(&PODS, name))?;
    check_preconditions(&PODS, &pod, opts)?;
    let uid = pod["metadata"]["uid"].as_str().unwrap_or("").to_string();
    let default_grace = pod["spec"]["terminationGracePeriodSeconds"].as_i64().unwrap_or(30);
    let mut grace = opts.grace.unwrap_or(default_grace).max(0);
    let finished = matches!(phase(&pod), "Succeeded" | "Failed");
    if node_name(&pod).is_none() || finished {
        grace = 0;
    }
    if grace == 0 {
        return remove_if_same(shared, ns, name, &uid, "grace 0s").ok_or_else(|| ApiError::not_found(&PODS, name));
    }
    if is_terminating(&pod) {
        let current = pod["metadata"]["deletionGracePeriodSeconds"]
            .as_i64()
            .unwrap_or(i64::MAX);
        if grace >= current {
            return Ok(pod);
        }
    }
    let deletion = crate::time::rfc3339(jiff::Timestamp::now() + jiff::SignedDuration::from_secs(grace));
    let updated = shared
        .store
        .update_with(PODS, Some(ns), name, None, |p| {
            if p["metadata"]["uid"].as_str() != Some(uid.as_str()) {
                return Err(store::StoreError::NotFound {
                    kind: "pods".into(),
                    name: name.to_string(),
                });
            }
            p["metadata"]["deletionTimestamp"] = json!(deletion);
            p["metadata"]["deletionGracePeriodSeconds"] = json!(grace);
            Ok(())
        })
        .map_err(|e| ApiError::from_store(&PODS, name, e))?;
    if !is_terminating(&pod) {
        // The kubelet stops the pod's containers.
        if let Some(node) = node_name(&updated) {
            for c in updated["spec"]["containers"].as_array().into_iter().flatten() {
                let cname = c["name"].as_str().unwrap_or("");
                crate::recorder::record(
                    shared,
                    &crate::recorder::ObjectRef::of(&updated).with_field_path(format!("spec.containers{{{cname}}}")),
                    crate::recorder::kubelet(node),
                    "Normal",
                    "Killing",
                    &format!("Stopping container {cname}"),
                );
            }
        }
    }
    let after = (grace as f64).min(shared.scenario.timing.termination_seconds.max(0.0));
    schedule_removal(shared, ns, name, &uid, after, format!("grace {grace}s"));
    Ok(updated)
}

fn schedule_removal(shared: &Arc<Shared>, ns: &str, name: &str, uid: &str, after: f64, detail: String) {
    let (s, ns, name, uid) = (shared.clone(), ns.to_string(), name.to_string(), uid.to_string());
    match tokio::runtime::Handle::try_current() {
        Ok(h) => {
            h.spawn(async move {
                let mut shutdown = s.shutdown.clone();
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_secs_f64(after)) => {}
                    _ = shutdown.changed() => return,
                }
                remove_if_same(&s, &ns, &name, &uid, &detail);
            });
        }
        Err(_) => {
            remove_if_same(&s, &ns, &name, &uid, &detail);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qos_class_follows_requests_and_limits() {
        let with = |resources: Value| json!({"containers": [{"name": "a", "resources": resources}]});
        assert_eq!(qos_class(&with(json!({}))), "BestEffort");
        assert_eq!(qos_class(&with(json!({"requests": {"cpu": "500m"}}))), "Burstable");
        assert_eq!(
            qos_class(&with(json!({"limits": {"cpu": "1", "memory": "1Gi"}}))),
            "Guaranteed"
        );
        assert_eq!(
            qos_class(&with(
                json!({"requests": {"cpu": "1000m", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "1Gi"}})
            )),
            "Guaranteed"
        );
        assert_eq!(
            qos_class(&with(
                json!({"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "1Gi"}})
            )),
            "Burstable"
        );
    }
}
