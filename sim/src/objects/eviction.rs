//! Evicting a pod, as the kube-apiserver's eviction REST decides it (served at
//! `POST .../pods/{name}/eviction`, and used by the node image upgrade's drain):
//! - a pod that is already terminating, Pending or finished is deleted without
//!   looking at budgets;
//! - more than one matching PodDisruptionBudget: HTTP 500, permanent;
//! - a pod that is not Ready may go without spending the budget while the budget is
//!   healthy (`currentHealthy >= desiredHealthy > 0`, the default
//!   `unhealthyPodEvictionPolicy: IfHealthyBudget`), or always with `AlwaysAllow`;
//! - otherwise the budget must allow a disruption (`disruptionsAllowed > 0`, status
//!   observed for the current generation, no `pdb-never-allows` fault): it is decremented
//!   and the pod recorded in `disruptedPods` atomically, then the pod is deleted;
//!   else 429 TooManyRequests with a `DisruptionBudget` cause.

use super::pods::{self, DeleteOpts};
use super::selector;
use super::status::ApiError;
use crate::events::kinds;
use crate::store::{self, PDBS, PODS};
use crate::Shared;
use serde_json::{json, Value};
use std::sync::Arc;

const TOO_MANY: &str = "Cannot evict pod as it would violate the pod's disruption budget.";
const MULTIPLE: &str =
    "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.";

fn refused(message: String) -> ApiError {
    ApiError::new(429, "TooManyRequests", TOO_MANY).with_details(json!({
        "causes": [{"reason": "DisruptionBudget", "message": message}]
    }))
}

/// The budgets in the pod's namespace whose selector matches the pod.
pub fn matching_pdbs(shared: &Shared, pod: &Value) -> Vec<Value> {
    let ns = pod["metadata"]["namespace"].as_str().unwrap_or("default");
    let labels = &pod["metadata"]["labels"];
    shared
        .store
        .list(PDBS, Some(ns))
        .into_iter()
        .filter(|p| selector::object_selects(&p["spec"]["selector"], labels))
        .collect()
}

/// Evict a pod. A dry run (`opts.dry_run`, as `kubectl drain --dry-run=server` asks for it)
/// makes every check, the budget's included, and fails as the real eviction would, but
/// spends no budget and deletes nothing.
pub fn evict(shared: &Arc<Shared>, ns: &str, name: &str, opts: DeleteOpts) -> Result<(), ApiError> {
    let dry_run = opts.dry_run;
    let pod = shared
        .store
        .get(PODS, Some(ns), name)
        .ok_or_else(|| ApiError::not_found(&PODS, name))?;
    let node = pods::node_name(&pod).map(str::to_string);
    let object = format!("{ns}/{name}");
    if dry_run {
        pods::check_preconditions(&PODS, &pod, &opts)?;
    }
    let delete = |opts: &DeleteOpts| -> Result<(), ApiError> {
        if !dry_run {
            pods::delete_pod(shared, ns, name, opts)?;
        }
        Ok(())
    };

    if pods::is_terminating(&pod) {
        delete(&opts)?;
        return Ok(());
    }
    if matches!(pods::phase(&pod), "Pending" | "Succeeded" | "Failed") {
        delete(&opts)?;
        if dry_run {
            return Ok(());
        }
        shared.events.record(
            kinds::EVICTION,
            node.as_deref(),
            Some(&object),
            format!("phase {}", pods::phase(&pod)),
        );
        return Ok(());
    }
    let pdbs = matching_pdbs(shared, &pod);
    if pdbs.len() > 1 {
        let names: Vec<&str> = pdbs.iter().filter_map(|p| p["metadata"]["name"].as_str()).collect();
        if dry_run {
            return Err(ApiError::new(500, "", MULTIPLE));
        }
        shared.events.record(
            kinds::EVICTION_REFUSED,
            node.as_deref(),
            Some(&object),
            format!("more than one PodDisruptionBudget: {}", names.join(", ")),
        );
        return Err(ApiError::new(500, "", MULTIPLE));
    }
    let mut detail = String::from("no PodDisruptionBudget");
    if let Some(pdb) = pdbs.first() {
        let pdb_name = pdb["metadata"]["name"].as_str().unwrap_or("").to_string();
        detail = format!("pdb {pdb_name}");
        let st = &pdb["status"];
        let (desired, current) = (
            st["desiredHealthy"].as_i64().unwrap_or(0),
            st["currentHealthy"].as_i64().unwrap_or(0),
        );
        let always = pdb["spec"]["unhealthyPodEvictionPolicy"] == "AlwaysAllow";
        let unready_ok = !pods::is_ready(&pod) && (always || (current >= desired && desired > 0));
        if !unready_ok {
            let never = shared.faults.pdb_never_allows(ns, &pdb_name);
            let mut refusal: Option<ApiError> = None;
            let mut spend = |p: &mut Value| -> Result<(), store::StoreError> {
                let st = &p["status"];
                let (desired, current) = (
                    st["desiredHealthy"].as_i64().unwrap_or(0),
                    st["currentHealthy"].as_i64().unwrap_or(0),
                );
                let observed = st["observedGeneration"].as_i64().unwrap_or(0);
                let generation = p["metadata"]["generation"].as_i64().unwrap_or(0);
                let allowed = st["disruptionsAllowed"].as_i64().unwrap_or(0);
                if observed < generation {
                    refusal = Some(refused(format!(
                        "The disruption budget {pdb_name} is still being processed by the server."
                    )));
                } else if never || allowed <= 0 {
                    refusal = Some(refused(format!(
                        "The disruption budget {pdb_name} needs {desired} healthy pods and has {current} currently"
                    )));
                }
                if refusal.is_some() {
                    return Err(store::StoreError::Invalid("refused".into()));
                }
                p["status"]["disruptionsAllowed"] = json!(allowed - 1);
                if !p["status"]["disruptedPods"].is_object() {
                    p["status"]["disruptedPods"] = json!({});
                }
                p["status"]["disruptedPods"][name] = json!(crate::time::now_rfc3339());
                Ok(())
            };
            let res = if dry_run {
                let mut copy = pdb.clone();
                spend(&mut copy).map(|_| copy)
            } else {
                shared.store.update_with(PDBS, Some(ns), &pdb_name, None, spend)
            };
            if let Some(e) = refusal {
                if dry_run {
                    return Err(e);
                }
                shared.events.record(
                    kinds::EVICTION_REFUSED,
                    node.as_deref(),
                    Some(&object),
                    format!(
                        "pdb {pdb_name}: {}",
                        e.details
                            .as_ref()
                            .map(|d| d["causes"][0]["message"].as_str().unwrap_or(""))
                            .unwrap_or("")
                    ),
                );
                return Err(e);
            }
            match res {
                Ok(_) => {}
                // The budget was deleted meanwhile: nothing protects the pod any more.
                Err(store::StoreError::NotFound { .. }) => {}
                Err(e) => return Err(ApiError::from_store(&PDBS, &pdb_name, e)),
            }
        } else {
            detail = format!("pdb {pdb_name} (pod not ready)");
        }
    }
    if dry_run {
        return Ok(());
    }
    // Preconditions hold for the pod as read; the condition added next moves its
    // resourceVersion, so the delete itself only checks the UID (as the API server does).
    pods::check_preconditions(&PODS, &pod, &opts)?;
    let opts = DeleteOpts {
        resource_version: None,
        ..opts
    };
    mark_disruption_target(shared, ns, name);
    crate::recorder::record(
        shared,
        &crate::recorder::ObjectRef::of(&pod),
        crate::recorder::Source {
            component: "eviction-api",
            host: None,
        },
        "Normal",
        "Evicted",
        &format!("Evicted by the Eviction API: {}", eviction_reason(&detail)),
    );
    pods::delete_pod(shared, ns, name, &opts)?;
    shared
        .events
        .record(kinds::EVICTION, node.as_deref(), Some(&object), detail);
    Ok(())
}

/// Why the eviction was allowed, for the `Evicted` event.
fn eviction_reason(detail: &str) -> String {
    if let Some(p) = detail.strip_prefix("pdb ") {
        match p.strip_suffix(" (pod not ready)") {
            Some(p) => format!("the pod is not ready and PodDisruptionBudget {p} is healthy"),
            None => format!("PodDisruptionBudget {p} allowed the disruption"),
        }
    } else {
        "no PodDisruptionBudget covers the pod".into()
    }
}

/// The `DisruptionTarget` condition the API server sets on a pod it evicts (1.26+).
fn mark_disruption_target(shared: &Shared, ns: &str, name: &str) {
    let now = crate::time::now_rfc3339();
    let _ = shared.store.update_with(PODS, Some(ns), name, None, |p| {
        let cond = json!({"type": "DisruptionTarget", "status": "True", "lastProbeTime": null,
                          "lastTransitionTime": now, "reason": "EvictionByEvictionAPI",
                          "message": "Eviction API: evicting"});
        match p["status"]["conditions"].as_array_mut() {
            Some(cs) => {
                cs.retain(|c| c["type"] != "DisruptionTarget");
                cs.push(cond);
            }
            None => p["status"]["conditions"] = json!([cond]),
        }
        Ok(())
    });
}
