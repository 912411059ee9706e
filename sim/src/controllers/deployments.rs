//! The Deployment controller: a ReplicaSet per template, rolled over on a template change.

use super::*;

/// Each Deployment has a ReplicaSet for its current template, sized as the Deployment
/// says. A new template (`kubectl rollout restart`, a new image) gets a new ReplicaSet at
/// the next revision; the old ones shrink as the new pods turn Ready, so that the
/// Deployment never has fewer Ready pods than it wants (a rolling update with maxSurge
/// 100% and maxUnavailable 0).
pub(super) fn deployments(shared: &Shared) {
    let all_rs = shared.store.list(REPLICASETS, None);
    for d in shared.store.list(DEPLOYMENTS, None) {
        let mine: Vec<&Value> = all_rs
            .iter()
            .filter(|r| pods::controller_ref(r).is_some_and(|o| o["uid"] == d["metadata"]["uid"]))
            .collect();
        let replicas = d["spec"]["replicas"].as_i64().unwrap_or(1);
        let top = mine.iter().map(|r| revision_of(r)).max().unwrap_or(0);
        let (ns, dname) = (namespace(&d).to_string(), name(&d).to_string());
        let Some(current) = current_replicaset(&d, &mine) else {
            let rs = if mine.is_empty() {
                replicaset_for(&d, None)
            } else {
                let hash = content_hash(&json!([ns, dname, d["spec"]["template"]]));
                replicaset_with(&d, None, &hash, top + 1)
            };
            if let Some(rs) = warn_err("create replicaset", shared.store.create(REPLICASETS, rs)) {
                let rev = revision_of(&rs).to_string();
                let r = shared.store.update_with(DEPLOYMENTS, Some(&ns), &dname, None, |o| {
                    o["metadata"]["annotations"]["deployment.kubernetes.io/revision"] = json!(rev);
                    Ok(())
                });
                warn_err("deployment revision", r);
                recorder::record(
                    shared,
                    &recorder::ObjectRef::of(&d),
                    recorder::Source {
                        component: "deployment-controller",
                        host: None,
                    },
                    "Normal",
                    "ScalingReplicaSet",
                    &format!("Scaled up replica set {} from 0 to {replicas}", name(&rs)),
                );
            }
            continue;
        };
        let resize = |rs: &Value, to: i64, revision: Option<i64>| {
            let r = shared
                .store
                .update_with(REPLICASETS, Some(namespace(rs)), name(rs), None, |o| {
                    o["spec"]["replicas"] = json!(to);
                    o["metadata"]["annotations"]["deployment.kubernetes.io/desired-replicas"] =
                        json!(replicas.to_string());
                    o["metadata"]["annotations"]["deployment.kubernetes.io/max-replicas"] =
                        json!((replicas + 1).to_string());
                    if let Some(rev) = revision {
                        o["metadata"]["annotations"]["deployment.kubernetes.io/revision"] = json!(rev.to_string());
                    }
                    Ok(())
                });
            warn_err("scale replicaset", r);
        };
        // A rollback to an older template makes its ReplicaSet the newest revision again.
        let bump = (revision_of(current) < top).then_some(top + 1);
        if current["spec"]["replicas"].as_i64().unwrap_or(1) != replicas || bump.is_some() {
            resize(current, replicas, bump);
        }
        let new_ready = current["status"]["readyReplicas"].as_i64().unwrap_or(0);
        let mut old_left = (replicas - new_ready).max(0);
        for old in mine.iter().filter(|r| uid(r) != uid(current)) {
            let have = old["spec"]["replicas"].as_i64().unwrap_or(0);
            let keep = have.min(old_left);
            old_left -= keep;
            if keep != have {
                resize(old, keep, None);
            }
        }
    }
}

/// The Deployment's ReplicaSet for its current template, if there is one.
pub(super) fn current_replicaset<'a>(d: &Value, mine: &[&'a Value]) -> Option<&'a Value> {
    let tpl = &d["spec"]["template"];
    mine.iter().copied().find(|rs| template_of(rs) == *tpl)
}
