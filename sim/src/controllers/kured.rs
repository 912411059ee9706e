//! kured's lock: events on the kube-system/kured DaemonSet when its lock annotation changes
//! hands.

use super::*;

/// The kured lock annotation on the kube-system/kured DaemonSet.
pub const KURED_LOCK_ANNOTATION: &str = "weave.works/kured-node-lock";

/// Record changes of kured's lock annotation in the event log.
pub(super) fn kured_lock(shared: &Shared, st: &mut State) {
    let cur = shared
        .store
        .get(DAEMONSETS, Some("kube-system"), "kured")
        .and_then(|d| {
            d["metadata"]["annotations"][KURED_LOCK_ANNOTATION]
                .as_str()
                .map(str::to_string)
        });
    let prev = st.kured_lock.replace(cur.clone());
    let Some(prev) = prev else { return };
    if prev == cur {
        return;
    }
    let holder = |v: &Option<String>| -> Vec<String> {
        let Some(v) = v else { return vec![] };
        let parsed: Value = serde_json::from_str(v).unwrap_or(Value::Null);
        if let Some(locks) = parsed["locks"].as_array() {
            return locks
                .iter()
                .filter_map(|l| l["nodeID"].as_str().map(str::to_string))
                .collect();
        }
        parsed["nodeID"]
            .as_str()
            .filter(|s| !s.is_empty())
            .map(|s| vec![s.to_string()])
            .unwrap_or_default()
    };
    let (before, after) = (holder(&prev), holder(&cur));
    let node = after.first().or(before.first()).cloned();
    let detail = if after.is_empty() {
        format!("released (was held by {})", before.join(","))
    } else {
        format!("held by {}", after.join(","))
    };
    shared
        .events
        .record(kinds::KURED_LOCK, node.as_deref(), Some("kube-system/kured"), detail);
}
