//! The kubelet's side of pods: it starts them after `timing.podStartSeconds`, marks them
//! NotReady while their node is, restarts them after a reboot, and keeps static pods'
//! mirror pods.

use super::*;

/// Start scheduled pods after `podStartSeconds`, follow node readiness and reboots.
pub(super) fn kubelet(shared: &Arc<Shared>, nodes: &[NodeInfo], st: &mut State, all: &[Value]) -> bool {
    let mut wrote = false;
    let start_after = crate::time::secs(shared.scenario.timing.pod_start_seconds);
    let by_name: HashMap<&str, &NodeInfo> = nodes.iter().map(|n| (n.name.as_str(), n)).collect();
    let live: HashSet<&str> = all.iter().filter(|p| active(p)).map(uid).collect();
    st.starting.retain(|u, _| live.contains(u.as_str()));
    st.boot_seen.retain(|u, _| live.contains(u.as_str()));
    st.job_running.retain(|u, _| live.contains(u.as_str()));
    for p in all.iter().filter(|p| active(p)) {
        let Some(node) = pods::node_name(p).and_then(|n| by_name.get(n)) else {
            continue;
        };
        let u = uid(p).to_string();
        let (ns, pname) = (namespace(p), name(p));
        let ready = pods::is_ready(p);
        if !node.ready {
            st.starting.remove(&u);
            if ready {
                let t = now();
                let r = shared.store.update_with(PODS, Some(ns), pname, None, |o| {
                    mark_not_ready(o, &t);
                    Ok(())
                });
                wrote |= warn_err("mark pod not ready", r).is_some();
            }
            continue;
        }
        let rebooted = st.boot_seen.get(&u).is_some_and(|b| *b != node.boot_id);
        if rebooted && p["spec"]["restartPolicy"] == "Never" {
            // Its containers died with the node and are never restarted: the pod is Failed.
            let t = now();
            let r = shared.store.update_with(PODS, Some(ns), pname, None, |o| {
                if !active(o) {
                    return Ok(());
                }
                o["status"] = failed_after_reboot_status(o, &t);
                Ok(())
            });
            if warn_err("fail pod after reboot", r).is_some() {
                wrote = true;
                st.boot_seen.remove(&u);
                shared.events.record(
                    kinds::POD_FAILED,
                    Some(&node.name),
                    Some(&pods::key(p)),
                    "node rebooted (restartPolicy: Never)",
                );
            }
            continue;
        }
        if ready {
            if rebooted {
                // A reboot so fast the node never looked NotReady: the containers restarted.
                let t = now();
                let r = shared.store.update_with(PODS, Some(ns), pname, None, |o| {
                    o["status"] = running_status(o, node, &t, true);
                    Ok(())
                });
                if let Some(obj) = warn_err("restart pod", r) {
                    wrote = true;
                    crate::nodes::containers::start(shared, &obj, &node.name);
                }
            }
            if st.boot_seen.get(&u) != Some(&node.boot_id) {
                st.boot_seen.insert(u.clone(), node.boot_id.clone());
            }
            if let Some(run) = job_run_time(p) {
                let since = *st.job_running.entry(u.clone()).or_insert_with(Instant::now);
                if since.elapsed() >= run {
                    let t = now();
                    let r = shared.store.update_with(PODS, Some(ns), pname, None, |o| {
                        if !active(o) {
                            return Ok(());
                        }
                        o["status"] = succeeded_status(o, &t);
                        Ok(())
                    });
                    if warn_err("complete job pod", r).is_some() {
                        wrote = true;
                        st.job_running.remove(&u);
                    }
                }
            }
            continue;
        }
        let since = *st.starting.entry(u.clone()).or_insert_with(Instant::now);
        if since.elapsed() < start_after {
            continue;
        }
        if let Some(image) = containers(p)
            .iter()
            .filter_map(|c| c["image"].as_str())
            .find(|i| shared.faults.image_pull_fails(i))
        {
            // The image never pulls: ErrImagePull first, then ImagePullBackOff from then on.
            let waiting: Vec<&str> = p["status"]["containerStatuses"]
                .as_array()
                .map(|cs| {
                    cs.iter()
                        .filter_map(|c| c["state"]["waiting"]["reason"].as_str())
                        .collect()
                })
                .unwrap_or_default();
            if waiting.contains(&"ImagePullBackOff")
                || (waiting.contains(&"ErrImagePull") && since.elapsed() < start_after * 2)
            {
                continue;
            }
            let backoff = waiting.contains(&"ErrImagePull");
            let reason = if backoff { "ImagePullBackOff" } else { "ErrImagePull" };
            let msg = if backoff {
                format!("Back-off pulling image \"{image}\"")
            } else {
                format!("failed to pull and unpack image \"{image}\": failed to resolve reference \"{image}\": unexpected status from HEAD request: 403 Forbidden (aks-sim fault image-pull-failure)")
            };
            let t = now();
            let r = shared.store.update_with(PODS, Some(ns), pname, None, |o| {
                if !active(o) {
                    return Ok(());
                }
                let mut status = scheduled_status(o, node, &t);
                if let Some(cs) = status["containerStatuses"].as_array_mut() {
                    for c in cs {
                        c["state"] = json!({"waiting": {"reason": reason, "message": msg}});
                    }
                }
                o["status"] = status;
                Ok(())
            });
            if let Some(obj) = warn_err("image pull failure", r) {
                wrote = true;
                recorder::record(
                    shared,
                    &recorder::ObjectRef::of(&obj),
                    recorder::kubelet(&node.name),
                    "Warning",
                    if backoff { "BackOff" } else { "Failed" },
                    &msg,
                );
            }
            continue;
        }
        let restarted = pods::phase(p) == "Running";
        let t = now();
        let r = shared.store.update_with(PODS, Some(ns), pname, None, |o| {
            if !active(o) {
                return Ok(());
            }
            o["status"] = running_status(o, node, &t, restarted);
            Ok(())
        });
        if let Some(obj) = warn_err("start pod", r) {
            wrote = true;
            crate::nodes::containers::start(shared, &obj, &node.name);
            st.starting.remove(&u);
            st.boot_seen.insert(u, node.boot_id.clone());
            shared.events.record(
                kinds::POD_READY,
                Some(&node.name),
                Some(&pods::key(p)),
                if restarted { "restarted" } else { "started" },
            );
        }
    }
    wrote
}

/// The kubelet recreates the mirror pod of a static pod when it is deleted.
pub(super) fn static_pods(shared: &Shared, nodes: &[NodeInfo]) -> bool {
    let mut wrote = false;
    for w in shared
        .scenario
        .workloads
        .iter()
        .filter(|w| w.kind == WorkloadKind::StaticPod)
    {
        let Some(n) = first_node(nodes, w) else { continue };
        if !n.ready
            || shared
                .store
                .get(PODS, Some(&w.namespace), &mirror_name(w, &n.name))
                .is_some()
        {
            continue;
        }
        if let Ok(p) = create_mirror_pod(shared, w, n, &now()) {
            wrote = true;
            shared
                .events
                .record(kinds::POD_CREATED, Some(&n.name), Some(&pods::key(&p)), "mirror pod");
        }
    }
    wrote
}
