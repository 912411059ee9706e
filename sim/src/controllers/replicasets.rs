//! The ReplicaSet controller: as many pods as `spec.replicas`.

use super::*;

/// Each ReplicaSet keeps `replicas` active pods: missing ones are created (the scheduler
/// places them), extra ones deleted.
pub(super) fn replicasets(shared: &Arc<Shared>, all: &[Value]) -> bool {
    let mut wrote = false;
    for rs in shared.store.list(REPLICASETS, None) {
        let desired = rs["spec"]["replicas"].as_i64().unwrap_or(1).max(0) as usize;
        let mut act: Vec<&Value> = owned_by(all, uid(&rs)).into_iter().filter(|p| active(p)).collect();
        let ns = namespace(&rs);
        if act.len() < desired {
            for _ in act.len()..desired {
                let pod = pod_from_template(
                    &rs["spec"]["template"],
                    ns,
                    name(&rs),
                    owner_ref("apps/v1", "ReplicaSet", &rs),
                );
                if let Some(p) = warn_err("create pod", shared.store.create(PODS, pod)) {
                    wrote = true;
                    shared.events.record(
                        kinds::POD_CREATED,
                        None,
                        Some(&pods::key(&p)),
                        format!("replicaset {}", name(&rs)),
                    );
                    recorder::record(
                        shared,
                        &recorder::ObjectRef::of(&rs),
                        recorder::REPLICASET_CONTROLLER,
                        "Normal",
                        "SuccessfulCreate",
                        &format!("Created pod: {}", name(&p)),
                    );
                }
            }
        } else if act.len() > desired {
            // Unscheduled first, then not ready, then the newest.
            act.sort_by_key(|p| {
                (
                    pods::node_name(p).is_some(),
                    pods::is_ready(p),
                    std::cmp::Reverse(p["metadata"]["creationTimestamp"].as_str().unwrap_or("").to_string()),
                )
            });
            for p in act.iter().take(act.len() - desired) {
                wrote |= pods::delete_pod(shared, ns, name(p), &DeleteOpts::default()).is_ok();
            }
        }
    }
    wrote
}
