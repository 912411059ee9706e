//! The StatefulSet controller: ordinal pods, created and replaced one at a time.

use super::*;

/// Ordinal `i` of a StatefulSet's pod `<set>-<i>`.
pub(super) fn ordinal(set: &str, pod: &str) -> Option<i64> {
    pod.strip_prefix(set)?.strip_prefix('-')?.parse().ok()
}

/// The pod `<set>-<i>` of a StatefulSet, unscheduled.
pub(super) fn statefulset_pod(sts: &Value, i: i64) -> Value {
    let sname = name(sts);
    let mut pod = pod_from_template(
        &sts["spec"]["template"],
        namespace(sts),
        sname,
        owner_ref("apps/v1", "StatefulSet", sts),
    );
    let pname = format!("{sname}-{i}");
    if let Some(m) = pod["metadata"].as_object_mut() {
        m.remove("generateName");
    }
    pod["metadata"]["name"] = json!(pname);
    label_revision(&mut pod, &revision(sts));
    pod["metadata"]["labels"]["statefulset.kubernetes.io/pod-name"] = json!(pname);
    pod["metadata"]["labels"]["apps.kubernetes.io/pod-index"] = json!(i.to_string());
    pod["spec"]["hostname"] = json!(pname);
    if let Some(svc) = sts["spec"]["serviceName"].as_str().filter(|s| !s.is_empty()) {
        pod["spec"]["subdomain"] = json!(svc);
    }
    pod
}

/// OrderedReady: pods are created in ordinal order, each only once every lower one is
/// Running and Ready; scale-down and rolling updates go from the highest ordinal, one pod
/// at a time, only while all the others are Ready. A deleted or evicted pod comes back
/// under the same name once the old one is gone.
pub(super) fn statefulsets(shared: &Arc<Shared>, all: &[Value]) -> bool {
    let mut wrote = false;
    for sts in shared.store.list(STATEFULSETS, None) {
        let (ns, sname) = (namespace(&sts).to_string(), name(&sts).to_string());
        let desired = sts["spec"]["replicas"].as_i64().unwrap_or(1).max(0);
        let rev = revision(&sts);
        let mut mine: BTreeMap<i64, &Value> = BTreeMap::new();
        for p in owned_by(all, uid(&sts)) {
            if let Some(i) = ordinal(&sname, name(p)) {
                mine.insert(i, p);
            }
        }
        let settled = |p: &Value| !pods::is_terminating(p) && pods::is_ready(p);
        let mut busy = false;
        for i in 0..desired {
            match mine.get(&i) {
                None => {
                    let pod = statefulset_pod(&sts, i);
                    if let Some(p) = warn_err("create statefulset pod", shared.store.create(PODS, pod)) {
                        wrote = true;
                        shared.events.record(
                            kinds::POD_CREATED,
                            None,
                            Some(&pods::key(&p)),
                            format!("statefulset {sname}"),
                        );
                        recorder::record(
                            shared,
                            &recorder::ObjectRef::of(&sts),
                            recorder::Source {
                                component: "statefulset-controller",
                                host: None,
                            },
                            "Normal",
                            "SuccessfulCreate",
                            &format!("create Pod {} in StatefulSet {sname} successful", name(&p)),
                        );
                    }
                    busy = true;
                    break;
                }
                Some(p) if !settled(p) => {
                    busy = true;
                    break;
                }
                Some(_) => {}
            }
        }
        if busy {
            continue;
        }
        // Scale down, highest ordinal first.
        if let Some((_, p)) = mine.iter().rev().find(|(i, _)| **i >= desired) {
            if !pods::is_terminating(p) {
                wrote |= pods::delete_pod(shared, &ns, name(p), &DeleteOpts::default()).is_ok();
            }
            continue;
        }
        // Rolling update (kubectl rollout restart), highest ordinal first.
        if let Some(p) = mine.values().rev().find(|p| pod_revision(p) != rev) {
            wrote |= pods::delete_pod(shared, &ns, name(p), &DeleteOpts::default()).is_ok();
        }
    }
    wrote
}

/// StatefulSet status.
pub(super) fn statefulset_status(shared: &Shared, owners: &HashMap<&str, Vec<&Value>>) {
    let none: Vec<&Value> = vec![];
    for sts in shared.store.list(STATEFULSETS, None) {
        let act = owners.get(uid(&sts)).unwrap_or(&none);
        let rev = revision(&sts);
        let ready = act.iter().filter(|p| pods::is_ready(p)).count() as i64;
        let updated = act.iter().filter(|p| pod_revision(p) == rev).count() as i64;
        let current_rev = if updated == act.len() as i64 {
            rev.clone()
        } else {
            act.iter()
                .map(|p| pod_revision(p))
                .find(|r| *r != rev)
                .unwrap_or(&rev)
                .to_string()
        };
        let status = json!({
            "observedGeneration": sts["metadata"]["generation"].as_i64().unwrap_or(1),
            "replicas": act.len(), "readyReplicas": ready, "currentReplicas": updated,
            "updatedReplicas": updated, "availableReplicas": ready,
            "currentRevision": current_rev, "updateRevision": rev, "collisionCount": 0,
        });
        set_status(shared, STATEFULSETS, &sts, status);
    }
}
