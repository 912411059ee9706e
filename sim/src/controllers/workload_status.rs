//! The status of Deployments, ReplicaSets and DaemonSets, from their pods.

use super::*;

/// ReplicaSet, Deployment and DaemonSet status.
pub(super) fn workload_status(shared: &Shared, nodes: &[NodeInfo], owners: &HashMap<&str, Vec<&Value>>) {
    let none: Vec<&Value> = vec![];
    let t = now();
    let mut rs_status: HashMap<String, (i64, i64)> = HashMap::new();
    for rs in shared.store.list(REPLICASETS, None) {
        let act = owners.get(uid(&rs)).unwrap_or(&none);
        let ready = act.iter().filter(|p| pods::is_ready(p)).count() as i64;
        let n = act.len() as i64;
        rs_status.insert(uid(&rs).to_string(), (n, ready));
        let status = json!({
            "replicas": n, "fullyLabeledReplicas": n, "readyReplicas": ready, "availableReplicas": ready,
            "observedGeneration": rs["metadata"]["generation"].as_i64().unwrap_or(1),
        });
        set_status(shared, REPLICASETS, &rs, status);
    }
    let all_rs = shared.store.list(REPLICASETS, None);
    for d in shared.store.list(DEPLOYMENTS, None) {
        let mine: Vec<&Value> = all_rs
            .iter()
            .filter(|r| pods::controller_ref(r).is_some_and(|o| o["uid"] == d["metadata"]["uid"]))
            .collect();
        let current = current_replicaset(&d, &mine);
        let updated = current
            .and_then(|rs| rs_status.get(uid(rs)))
            .map(|(n, _)| *n)
            .unwrap_or(0);
        let (mut n, mut ready) = (0, 0);
        for rs in all_rs
            .iter()
            .filter(|r| pods::controller_ref(r).is_some_and(|o| o["uid"] == d["metadata"]["uid"]))
        {
            let (a, b) = rs_status.get(uid(rs)).copied().unwrap_or((0, 0));
            n += a;
            ready += b;
        }
        let desired = d["spec"]["replicas"].as_i64().unwrap_or(1);
        let max_unavailable = match &d["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] {
            Value::Number(x) => x.as_i64().unwrap_or(0),
            Value::String(s) => s
                .trim_end_matches('%')
                .parse::<i64>()
                .map(|pct| desired * pct / 100)
                .unwrap_or(0),
            _ => desired / 4,
        };
        let available = ready >= desired - max_unavailable;
        let old = &d["status"];
        let mut avail = json!({"type": "Available", "status": if available {"True"} else {"False"},
            "reason": if available {"MinimumReplicasAvailable"} else {"MinimumReplicasUnavailable"},
            "message": if available {"Deployment has minimum availability."} else {"Deployment does not have minimum availability."},
            "lastUpdateTime": t, "lastTransitionTime": t});
        avail = keep_times(old, avail);
        let rs_name = current.map(|r| name(r).to_string()).unwrap_or_default();
        let progressing = keep_times(
            old,
            json!({"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable",
                   "message": format!("ReplicaSet \"{rs_name}\" has successfully progressed."),
                   "lastUpdateTime": t, "lastTransitionTime": t}),
        );
        let mut status = json!({
            "observedGeneration": d["metadata"]["generation"].as_i64().unwrap_or(1),
            "replicas": n, "updatedReplicas": updated, "readyReplicas": ready, "availableReplicas": ready,
            "conditions": [avail, progressing],
        });
        if desired - ready > 0 {
            status["unavailableReplicas"] = json!(desired - ready);
        }
        set_status(shared, DEPLOYMENTS, &d, status);
    }
    for ds in shared.store.list(DAEMONSETS, None) {
        let sel = &ds["spec"]["template"]["spec"]["nodeSelector"];
        let eligible: HashSet<&str> = nodes
            .iter()
            .filter(|n| selector_fits(sel, &n.labels))
            .map(|n| n.name.as_str())
            .collect();
        let act = owners.get(uid(&ds)).unwrap_or(&none);
        let scheduled: HashSet<&str> = act.iter().filter_map(|p| pods::node_name(p)).collect();
        let ready: HashSet<&str> = act
            .iter()
            .filter(|p| pods::is_ready(p))
            .filter_map(|p| pods::node_name(p))
            .collect();
        let desired = eligible.len() as i64;
        let current = scheduled.iter().filter(|n| eligible.contains(*n)).count() as i64;
        let misscheduled = scheduled.iter().filter(|n| !eligible.contains(*n)).count() as i64;
        let nready = ready.iter().filter(|n| eligible.contains(*n)).count() as i64;
        let rev = revision(&ds);
        let updated = act
            .iter()
            .filter(|p| p["metadata"]["labels"][REVISION_LABEL] == rev.as_str())
            .filter_map(|p| pods::node_name(p))
            .filter(|n| eligible.contains(*n))
            .count() as i64;
        let mut status = json!({
            "currentNumberScheduled": current, "desiredNumberScheduled": desired, "numberMisscheduled": misscheduled,
            "numberReady": nready, "numberAvailable": nready, "updatedNumberScheduled": updated,
            "observedGeneration": ds["metadata"]["generation"].as_i64().unwrap_or(1),
        });
        if desired - nready > 0 {
            status["numberUnavailable"] = json!(desired - nready);
        }
        set_status(shared, DAEMONSETS, &ds, status);
    }
}

/// An int-or-percent scaled against `total`, rounding up (as the disruption controller does).
pub(super) fn scaled(v: &Value, total: i64) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => {
            let pct: i64 = s.strip_suffix('%')?.trim().parse().ok()?;
            Some((total * pct + 99) / 100)
        }
        _ => None,
    }
}

/// How many pods the controllers of these pods want (the disruption controller's
/// "expected scale"); a pod without a controller counts as one.
pub(super) fn expected_scale(shared: &Shared, pods_: &[&Value]) -> i64 {
    let mut seen: BTreeMap<String, i64> = BTreeMap::new();
    let mut bare = 0;
    for p in pods_ {
        let Some(r) = pods::controller_ref(p) else {
            bare += 1;
            continue;
        };
        let u = r["uid"].as_str().unwrap_or("").to_string();
        if seen.contains_key(&u) {
            continue;
        }
        let ns = namespace(p);
        let n = match r["kind"].as_str() {
            Some("ReplicaSet") => match shared
                .store
                .get(REPLICASETS, Some(ns), r["name"].as_str().unwrap_or(""))
            {
                Some(rs) => match pods::controller_ref(&rs)
                    .filter(|o| o["kind"] == "Deployment")
                    .and_then(|o| {
                        shared
                            .store
                            .get(DEPLOYMENTS, Some(ns), o["name"].as_str().unwrap_or(""))
                    }) {
                    Some(d) => d["spec"]["replicas"].as_i64().unwrap_or(1),
                    None => rs["spec"]["replicas"].as_i64().unwrap_or(1),
                },
                None => 1,
            },
            Some("DaemonSet") => shared
                .store
                .get(DAEMONSETS, Some(ns), r["name"].as_str().unwrap_or(""))
                .and_then(|d| d["status"]["desiredNumberScheduled"].as_i64())
                .unwrap_or(1),
            Some("StatefulSet") => shared
                .store
                .get(store::STATEFULSETS, Some(ns), r["name"].as_str().unwrap_or(""))
                .and_then(|d| d["spec"]["replicas"].as_i64())
                .unwrap_or(1),
            _ => {
                bare += 1;
                continue;
            }
        };
        seen.insert(u, n);
    }
    seen.values().sum::<i64>() + bare
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_round_up() {
        assert_eq!(scaled(&json!("25%"), 3), Some(1));
        assert_eq!(scaled(&json!("50%"), 3), Some(2));
        assert_eq!(scaled(&json!(2), 3), Some(2));
        assert_eq!(scaled(&Value::Null, 3), None);
    }
}
