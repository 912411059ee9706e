//! The disruption controller: PodDisruptionBudget status (`disruptionsAllowed`,
//! `disruptedPods`), from the pods it selects and the scale of their owners.

use super::*;

/// The disruption controller forgets a disrupted pod that was not deleted after this long.
pub(super) const DISRUPTED_POD_TIMEOUT: i64 = 120;

/// PodDisruptionBudget status, as the disruption controller computes it. `budgets` were
/// read before `all`, and the update is conditional on the budget's resourceVersion, so
/// an eviction that spends the budget after the pods were read is never overwritten
/// with a stale allowance (the update conflicts and the next round recomputes).
pub(super) fn pdb_status(shared: &Shared, budgets: Vec<Value>, all: &[Value]) {
    let now_t = Timestamp::now();
    for pdb in budgets {
        let ns = namespace(&pdb).to_string();
        let pname = name(&pdb).to_string();
        let rv = pdb["metadata"]["resourceVersion"].as_str().unwrap_or("").to_string();
        // A null selector selects nothing (policy/v1).
        let sel = match &pdb["spec"]["selector"] {
            Value::Null => None,
            s => selector::LabelSelector::from_object(s).ok(),
        };
        let matching: Vec<&Value> = all
            .iter()
            .filter(|p| namespace(p) == ns)
            .filter(|p| sel.as_ref().is_some_and(|s| s.matches(&p["metadata"]["labels"])))
            .collect();
        let spec = &pdb["spec"];
        let (expected, desired) = if !spec["maxUnavailable"].is_null() {
            let e = expected_scale(shared, &matching);
            let mu = scaled(&spec["maxUnavailable"], e).unwrap_or(0);
            (e, (e - mu).max(0))
        } else if let Some(m) = spec["minAvailable"].as_i64() {
            (matching.len() as i64, m)
        } else if !spec["minAvailable"].is_null() {
            let e = expected_scale(shared, &matching);
            (e, scaled(&spec["minAvailable"], e).unwrap_or(0))
        } else {
            (matching.len() as i64, 0)
        };
        let mut disrupted = serde_json::Map::new();
        if let Some(d) = pdb["status"]["disruptedPods"].as_object() {
            for p in &matching {
                if pods::is_terminating(p) {
                    continue;
                }
                if let Some(at) = d.get(name(p)) {
                    let fresh = at
                        .as_str()
                        .and_then(crate::time::parse)
                        .is_some_and(|t| now_t.duration_since(t).as_secs() < DISRUPTED_POD_TIMEOUT);
                    if fresh {
                        disrupted.insert(name(p).to_string(), at.clone());
                    }
                }
            }
        }
        let healthy = matching
            .iter()
            .filter(|p| !pods::is_terminating(p) && pods::is_ready(p) && !disrupted.contains_key(name(p)))
            .count() as i64;
        let mut allowed = healthy - desired;
        if expected <= 0 || allowed <= 0 || shared.faults.pdb_never_allows(&ns, &pname) {
            allowed = 0;
        }
        let generation = pdb["metadata"]["generation"].as_i64().unwrap_or(1);
        let t = now();
        let cond = keep_times(
            &pdb["status"],
            json!({"type": "DisruptionAllowed", "status": if allowed > 0 {"True"} else {"False"},
                   "reason": if allowed > 0 {"SufficientPods"} else {"InsufficientPods"}, "message": "",
                   "observedGeneration": generation, "lastTransitionTime": t}),
        );
        let mut status = json!({
            "observedGeneration": generation,
            "disruptionsAllowed": allowed,
            "currentHealthy": healthy,
            "desiredHealthy": desired,
            "expectedPods": expected,
            "conditions": [cond],
        });
        if !disrupted.is_empty() {
            status["disruptedPods"] = Value::Object(disrupted);
        }
        if pdb["status"] == status {
            continue;
        }
        let r = shared.store.update_with(PDBS, Some(&ns), &pname, Some(&rv), |o| {
            o["status"] = status;
            Ok(())
        });
        warn_err("pdb status", r);
    }
}
