//! The garbage collector: what a deleted owner owned goes with it.

use super::*;

/// Pods whose ReplicaSet/DaemonSet is gone, and ReplicaSets whose Deployment is gone.
pub(super) fn garbage_collect(shared: &Arc<Shared>, all: &[Value]) -> bool {
    let mut wrote = false;
    let uids = |res| -> HashSet<String> {
        shared
            .store
            .list(res, None)
            .iter()
            .map(|o| uid(o).to_string())
            .collect()
    };
    let (rs, ds, deploy) = (uids(REPLICASETS), uids(DAEMONSETS), uids(DEPLOYMENTS));
    let (sts, jobs, cronjobs) = (uids(store::STATEFULSETS), uids(store::JOBS), uids(store::CRONJOBS));
    for j in shared.store.list(store::JOBS, None) {
        if let Some(o) = pods::controller_ref(&j).filter(|o| o["kind"] == "CronJob") {
            if !cronjobs.contains(o["uid"].as_str().unwrap_or("")) {
                wrote |= shared.store.remove(store::JOBS, Some(namespace(&j)), name(&j)).is_ok();
            }
        }
    }
    for p in all {
        let Some(r) = pods::controller_ref(p) else { continue };
        let u = r["uid"].as_str().unwrap_or("");
        let gone = match r["kind"].as_str() {
            Some("ReplicaSet") => !rs.contains(u),
            Some("DaemonSet") => !ds.contains(u),
            Some("StatefulSet") => !sts.contains(u),
            Some("Job") => !jobs.contains(u),
            _ => false,
        };
        if gone && !pods::is_terminating(p) {
            wrote |= pods::delete_pod(shared, namespace(p), name(p), &DeleteOpts::default()).is_ok();
        }
    }
    for r in shared.store.list(REPLICASETS, None) {
        let Some(owner) = pods::controller_ref(&r) else {
            continue;
        };
        if owner["kind"] == "Deployment" && !deploy.contains(owner["uid"].as_str().unwrap_or("")) {
            let _ = shared.store.remove(REPLICASETS, Some(namespace(&r)), name(&r));
        }
    }
    wrote
}
