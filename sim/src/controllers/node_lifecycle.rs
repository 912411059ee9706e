//! The node lifecycle controller's part here: the unschedulable taint follows
//! `spec.unschedulable`.

use super::*;

/// The unschedulable taint follows spec.unschedulable.
pub(super) fn node_lifecycle(shared: &Shared) {
    for n in shared.store.list(NODES, None) {
        let cordoned = n["spec"]["unschedulable"].as_bool().unwrap_or(false);
        let has = n["spec"]["taints"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t["key"] == UNSCHEDULABLE_TAINT));
        if cordoned == has {
            continue;
        }
        let r = shared.store.update_with(NODES, None, name(&n), None, |o| {
            let mut taints: Vec<Value> = o["spec"]["taints"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter(|t| t["key"] != UNSCHEDULABLE_TAINT)
                .collect();
            if o["spec"]["unschedulable"].as_bool().unwrap_or(false) {
                taints.push(json!({"key": UNSCHEDULABLE_TAINT, "effect": "NoSchedule", "timeAdded": now()}));
            }
            if taints.is_empty() {
                if let Some(s) = o["spec"].as_object_mut() {
                    s.remove("taints");
                }
            } else {
                o["spec"]["taints"] = json!(taints);
            }
            Ok(())
        });
        warn_err("node taints", r);
    }
}
