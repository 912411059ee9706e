//! The DaemonSet controller: one pod on every node it fits, replaced on a template change
//! (`kubectl rollout restart`).

use super::*;

/// One active pod of each DaemonSet on every node its node selector admits.
pub(super) fn daemonsets(shared: &Arc<Shared>, nodes: &[NodeInfo], all: &[Value]) -> bool {
    let mut wrote = false;
    for ds in shared.store.list(DAEMONSETS, None) {
        let ns = namespace(&ds);
        let sel = ds["spec"]["template"]["spec"]["nodeSelector"].clone();
        let eligible: Vec<&NodeInfo> = nodes.iter().filter(|n| selector_fits(&sel, &n.labels)).collect();
        let mut by_node: HashMap<&str, Vec<&Value>> = HashMap::new();
        for p in owned_by(all, uid(&ds)).into_iter().filter(|p| active(p)) {
            by_node.entry(pods::node_name(p).unwrap_or("")).or_default().push(p);
        }
        for n in &eligible {
            let on_node = by_node.remove(n.name.as_str()).unwrap_or_default();
            if on_node.is_empty() {
                let mut pod = pod_from_template(
                    &ds["spec"]["template"],
                    ns,
                    name(&ds),
                    owner_ref("apps/v1", "DaemonSet", &ds),
                );
                label_revision(&mut pod, &revision(&ds));
                pod["spec"]["nodeName"] = json!(n.name);
                pod["status"] = scheduled_status(&pod, n, &now());
                if let Some(p) = warn_err("create daemon pod", shared.store.create(PODS, pod)) {
                    wrote = true;
                    shared.events.record(
                        kinds::POD_CREATED,
                        Some(&n.name),
                        Some(&pods::key(&p)),
                        format!("daemonset {}", name(&ds)),
                    );
                }
            }
            for extra in on_node.iter().skip(1) {
                wrote |= pods::delete_pod(shared, ns, name(extra), &DeleteOpts::default()).is_ok();
            }
        }
        // Pods on nodes the DaemonSet no longer covers (or unscheduled ones).
        for p in by_node.into_values().flatten() {
            wrote |= pods::delete_pod(shared, ns, name(p), &DeleteOpts::default()).is_ok();
        }
    }
    wrote
}
/// DaemonSet rolling update: one outdated pod at a time, while every other one is Ready.
pub(super) fn daemonset_rollout(shared: &Arc<Shared>, all: &[Value]) -> bool {
    let mut wrote = false;
    for ds in shared.store.list(DAEMONSETS, None) {
        let rev = revision(&ds);
        let mine = owned_by(all, uid(&ds));
        if mine.iter().any(|p| pods::is_terminating(p) || !pods::is_ready(p)) {
            continue;
        }
        if let Some(p) = mine.iter().find(|p| pod_revision(p) != rev) {
            wrote |= pods::delete_pod(shared, namespace(p), name(p), &DeleteOpts::default()).is_ok();
        }
    }
    wrote
}
