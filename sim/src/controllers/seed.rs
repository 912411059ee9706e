//! The cluster at start: its Node and Namespace objects, and the scenario's workloads
//! (Deployments, DaemonSets, StatefulSets, Jobs, CronJobs, bare and static pods, budgets,
//! kured) already running, as on a cluster that has been up for `cluster.ageDays`.

use super::*;

pub(super) fn ensure_namespace(shared: &Shared, ns: &str, created: &str) -> anyhow::Result<()> {
    if shared.store.get(NAMESPACES, None, ns).is_some() {
        return Ok(());
    }
    shared.store.create(
        NAMESPACES,
        json!({"metadata": {"name": ns, "labels": {"kubernetes.io/metadata.name": ns}, "creationTimestamp": created},
               "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}),
    )?;
    Ok(())
}

pub(super) fn create_running_pod(
    shared: &Shared,
    mut pod: Value,
    node: &NodeInfo,
    created: &str,
) -> anyhow::Result<Value> {
    pod["metadata"]["creationTimestamp"] = json!(created);
    pod["spec"]["nodeName"] = json!(node.name);
    let status = running_status(&pod, node, created, false);
    pod["status"] = status;
    let pod = shared.store.create(PODS, pod)?;
    crate::nodes::containers::start_emulated(shared, &pod, &node.name);
    Ok(pod)
}

/// Create the scenario's workloads: namespaces, Deployments (with their ReplicaSet and
/// running pods), DaemonSets, bare pods, mirror pods of static pods, PDBs and kured.
pub fn seed(shared: &Arc<Shared>) -> anyhow::Result<()> {
    seed_nodes(shared)?;
    let created = cluster_created(shared);
    let nodes = node_infos(shared);
    let mut load = Load::default();
    // The kubelets' heartbeat leases (what `kubectl describe node` shows as Lease).
    if shared.store.get(NAMESPACES, None, "kube-node-lease").is_some() {
        for n in &nodes {
            shared.store.create(
                store::LEASES,
                json!({
                    "metadata": {"name": n.name, "namespace": "kube-node-lease", "creationTimestamp": created,
                                 "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": n.name, "uid": n.uid}]},
                    "spec": {"holderIdentity": n.name, "leaseDurationSeconds": 40, "renewTime": crate::time::now_rfc3339_micros()},
                }),
            )?;
        }
    }
    for (i, w) in shared.scenario.workloads.iter().enumerate() {
        seed_workload(shared, w, &nodes, &created, &mut load).with_context(|| {
            format!(
                "cannot create workloads[{i}] ({} {}/{})",
                kind_name(w.kind),
                w.namespace,
                w.name
            )
        })?;
    }
    if let Some(k) = &shared.scenario.kured {
        ensure_namespace(shared, "kube-system", &created)?;
        let w = Workload {
            kind: WorkloadKind::DaemonSet,
            name: "kured".into(),
            namespace: "kube-system".into(),
            replicas: 1,
            pool: None,
            empty_dir: false,
            pdb: None,
            termination_grace_seconds: 30,
            image: "ghcr.io/kubereboot/kured:1.17.1".into(),
            schedule: None,
            run_seconds: 1.0,
            requests: Default::default(),
        };
        let labels = json!({"name": "kured"});
        let mut obj = daemonset(&w, &labels, &created);
        if let Some(holder) = &k.lock_holder {
            let lock = json!({
                "nodeID": holder,
                "metadata": {"unschedulable": false},
                "created": crate::time::rfc3339_auto(jiff::Timestamp::now()),
                "TTL": 0,
            });
            obj["metadata"]["annotations"][KURED_LOCK_ANNOTATION] = json!(lock.to_string());
        }
        let ds = shared
            .store
            .create(DAEMONSETS, obj)
            .context("cannot create the kured DaemonSet (kube-system/kured)")?;
        for n in nodes.iter().filter(|n| selector_fits(&node_selector(&w), &n.labels)) {
            let mut pod = pod_from_template(
                &ds["spec"]["template"],
                "kube-system",
                "kured",
                owner_ref("apps/v1", "DaemonSet", &ds),
            );
            label_revision(&mut pod, &revision(&ds));
            pod["spec"]["nodeName"] = json!(n.name);
            create_running_pod(shared, pod, n, &created)?;
        }
    }
    // Statuses (PDB allowances, replica counts) before anything is served.
    let mut state = State::default();
    reconcile(shared, &mut state);
    Ok(())
}

pub(super) fn kind_name(k: WorkloadKind) -> &'static str {
    match k {
        WorkloadKind::Deployment => "Deployment",
        WorkloadKind::DaemonSet => "DaemonSet",
        WorkloadKind::Pod => "Pod",
        WorkloadKind::StaticPod => "StaticPod",
        WorkloadKind::StatefulSet => "StatefulSet",
        WorkloadKind::Job => "Job",
        WorkloadKind::CronJob => "CronJob",
    }
}

pub(super) fn seed_workload(
    shared: &Shared,
    w: &Workload,
    nodes: &[NodeInfo],
    created: &str,
    load: &mut Load,
) -> anyhow::Result<()> {
    ensure_namespace(shared, &w.namespace, created)?;
    let labels = json!({"app": w.name});
    match w.kind {
        WorkloadKind::Deployment => {
            let tpl = template(w, labels.clone(), vec![]);
            let deploy = shared.store.create(
                DEPLOYMENTS,
                json!({
                    "metadata": {"name": w.name, "namespace": w.namespace, "labels": labels,
                                 "annotations": {"deployment.kubernetes.io/revision": "1"}, "creationTimestamp": created},
                    "spec": {"replicas": w.replicas, "selector": {"matchLabels": labels}, "template": tpl,
                             "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
                             "revisionHistoryLimit": 10, "progressDeadlineSeconds": 600},
                }),
            )?;
            let rs = shared
                .store
                .create(REPLICASETS, replicaset_for(&deploy, Some(created)))?;
            let rs_name = rs["metadata"]["name"].as_str().unwrap_or("").to_string();
            for _ in 0..w.replicas {
                let pod = pod_from_template(
                    &rs["spec"]["template"],
                    &w.namespace,
                    &rs_name,
                    owner_ref("apps/v1", "ReplicaSet", &rs),
                );
                match pick_node(&pod, nodes, load) {
                    Some(n) => {
                        let pod = create_running_pod(shared, pod, n, created)?;
                        load.add(&pod, &n.name);
                    }
                    None => {
                        shared.store.create(PODS, pod)?;
                    }
                }
            }
        }
        WorkloadKind::DaemonSet => {
            let ds = shared.store.create(DAEMONSETS, daemonset(w, &labels, created))?;
            for n in nodes.iter().filter(|n| selector_fits(&node_selector(w), &n.labels)) {
                let mut pod = pod_from_template(
                    &ds["spec"]["template"],
                    &w.namespace,
                    &w.name,
                    owner_ref("apps/v1", "DaemonSet", &ds),
                );
                label_revision(&mut pod, &revision(&ds));
                pod["spec"]["nodeName"] = json!(n.name);
                let pod = create_running_pod(shared, pod, n, created)?;
                load.reserve(&pod, &n.name);
            }
        }
        WorkloadKind::Pod => {
            let Some(n) = first_node(nodes, w) else {
                anyhow::bail!("no Linux node{} to run the pod on", pool_hint(w));
            };
            let mut spec = pod_spec(w, default_tolerations());
            if let Some(m) = spec.as_object_mut() {
                m.remove("nodeSelector");
            }
            let pod = json!({
                "metadata": {"name": w.name, "namespace": w.namespace, "labels": labels},
                "spec": spec,
            });
            let pod = create_running_pod(shared, pod, n, created)?;
            load.reserve(&pod, &n.name);
        }
        WorkloadKind::StaticPod => {
            let Some(n) = first_node(nodes, w) else {
                anyhow::bail!("no Linux node{} to run the static pod on", pool_hint(w));
            };
            let pod = create_mirror_pod(shared, w, n, created)?;
            load.reserve(&pod, &n.name);
        }
        WorkloadKind::StatefulSet => {
            let sts = shared.store.create(
                store::STATEFULSETS,
                json!({
                    "metadata": {"name": w.name, "namespace": w.namespace, "labels": labels, "creationTimestamp": created},
                    "spec": {"replicas": w.replicas, "selector": {"matchLabels": labels}, "serviceName": w.name,
                             "template": template(w, labels.clone(), vec![]), "podManagementPolicy": "OrderedReady",
                             "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
                             "revisionHistoryLimit": 10},
                    "status": {},
                }),
            )?;
            for i in 0..w.replicas as i64 {
                let pod = statefulset_pod(&sts, i);
                match pick_node(&pod, nodes, load) {
                    Some(n) => {
                        let pod = create_running_pod(shared, pod, n, created)?;
                        load.add(&pod, &n.name);
                    }
                    None => {
                        shared.store.create(PODS, pod)?;
                    }
                }
            }
        }
        WorkloadKind::Job | WorkloadKind::CronJob => seed_job(shared, w, nodes, &labels, created)?,
    }
    if let Some(pdb) = &w.pdb {
        let mut spec = json!({"selector": {"matchLabels": labels}});
        if let Some(m) = pdb.min_available {
            spec["minAvailable"] = json!(m);
        }
        if let Some(m) = pdb.max_unavailable {
            spec["maxUnavailable"] = json!(m);
        }
        shared.store.create(
            PDBS,
            json!({"metadata": {"name": format!("{}-pdb", w.name), "namespace": w.namespace,
                                "labels": labels, "creationTimestamp": created},
                   "spec": spec, "status": {}}),
        )?;
    }
    Ok(())
}

/// A Job (or a CronJob and its last Job) that ran to completion an hour ago, its pod
/// Succeeded on a node: finished pods sit on nodes until their Job is cleaned up.
pub(super) fn seed_job(
    shared: &Shared,
    w: &Workload,
    nodes: &[NodeInfo],
    labels: &Value,
    created: &str,
) -> anyhow::Result<()> {
    let mut tpl = template(w, labels.clone(), vec![]);
    tpl["spec"]["restartPolicy"] = json!("Never");
    tpl["metadata"]["annotations"] = json!({RUN_SECONDS_ANNOTATION: w.run_seconds.to_string()});
    let now_t = Timestamp::now();
    let ts = crate::time::rfc3339;
    let mut ran_at = now_t - SignedDuration::from_hours(1);
    let job = if w.kind == WorkloadKind::CronJob {
        let schedule = w.schedule.clone().unwrap_or_default();
        let cj = shared.store.create(
            store::CRONJOBS,
            json!({
                "metadata": {"name": w.name, "namespace": w.namespace, "labels": labels, "creationTimestamp": created},
                "spec": {"schedule": schedule, "concurrencyPolicy": "Allow", "suspend": false,
                         "successfulJobsHistoryLimit": 3, "failedJobsHistoryLimit": 1,
                         "jobTemplate": {"metadata": {"labels": labels}, "spec": {"template": tpl}}},
                "status": {},
            }),
        )?;
        let sched = crate::cron::Schedule::parse(&schedule).map_err(anyhow::Error::msg)?;
        let Some(last) = sched.last_between(now_t - SignedDuration::from_hours(24), now_t) else {
            return Ok(()); // not run in the last day: no finished Job to show
        };
        ran_at = last;
        let mut j = job_for(&cj, last);
        j["metadata"]["creationTimestamp"] = json!(ts(last));
        shared.store.update_with(store::CRONJOBS, Some(&w.namespace), &w.name, None, |o| {
            o["status"] = json!({"lastScheduleTime": ts(last), "lastSuccessfulTime": ts(last + SignedDuration::from_secs(5))});
            Ok(())
        })?;
        j
    } else {
        let juid = uuid::Uuid::new_v4().to_string();
        let mut spec = json!({"completions": 1, "parallelism": 1, "backoffLimit": 6, "completionMode": "NonIndexed",
                              "suspend": false, "selector": null, "template": tpl});
        crate::objects::jobs::select_by_uid(&mut spec, &juid, &json!(w.name));
        json!({
            "metadata": {"name": w.name, "namespace": w.namespace, "uid": juid, "labels": labels,
                         "creationTimestamp": ts(ran_at)},
            "spec": spec,
        })
    };
    let done = ran_at + SignedDuration::from_secs(5);
    let mut job = job;
    job["status"] = complete_status(&ts(ran_at), &ts(done), 1);
    let job = shared.store.create(store::JOBS, job)?;
    let mut pod = job_pod(&job);
    let Some(n) = pick_node(&pod, nodes, &Load::default()) else {
        return Ok(());
    };
    pod["metadata"]["name"] = json!(format!("{}-{}", name(&job), &store::random_suffix()));
    pod["metadata"]["creationTimestamp"] = json!(ts(ran_at));
    pod["spec"]["nodeName"] = json!(n.name);
    let running = running_status(&pod, n, &ts(ran_at), false);
    pod["status"] = running;
    pod["status"] = succeeded_status(&pod, &ts(done));
    shared.store.create(PODS, pod)?;
    Ok(())
}

pub(super) fn pool_hint(w: &Workload) -> String {
    w.pool.as_ref().map(|p| format!(" in pool `{p}`")).unwrap_or_default()
}

pub(super) fn first_node<'a>(nodes: &'a [NodeInfo], w: &Workload) -> Option<&'a NodeInfo> {
    nodes.iter().find(|n| selector_fits(&node_selector(w), &n.labels))
}

pub(super) fn create_mirror_pod(
    shared: &Shared,
    w: &Workload,
    node: &NodeInfo,
    created: &str,
) -> anyhow::Result<Value> {
    let hash = template_hash(&w.namespace, &mirror_name(w, &node.name));
    let mut spec = pod_spec(w, vec![json!({"operator": "Exists", "effect": "NoExecute"})]);
    if let Some(m) = spec.as_object_mut() {
        m.remove("nodeSelector");
    }
    spec["priorityClassName"] = json!("system-node-critical");
    spec["priority"] = json!(2000001000);
    let pod = json!({
        "metadata": {
            "name": mirror_name(w, &node.name),
            "namespace": w.namespace,
            "labels": {"app": w.name},
            "annotations": {
                "kubernetes.io/config.hash": hash,
                "kubernetes.io/config.mirror": hash,
                "kubernetes.io/config.seen": created,
                "kubernetes.io/config.source": "file",
            },
            "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": node.name, "uid": node.uid, "controller": true}],
        },
        "spec": spec,
    });
    create_running_pod(shared, pod, node, created)
}

/// The Node objects of the scenario's machines and the cluster's namespaces.
fn seed_nodes(shared: &Arc<Shared>) -> anyhow::Result<()> {
    let created = cluster_created(shared);
    for n in &shared.nodes {
        let obj = crate::model::node_object(&shared.scenario, n, &crate::model::new_boot_id(), &created);
        shared.store.create(store::NODES, obj)?;
    }
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        shared.store.create(
            store::NAMESPACES,
            json!({"metadata": {"name": ns, "creationTimestamp": created}}),
        )?;
    }
    let (roles, bindings) = crate::rbac::bootstrap_objects(&created);
    for obj in roles {
        shared.store.create(store::CLUSTERROLES, obj)?;
    }
    for obj in bindings {
        shared.store.create(store::CLUSTERROLEBINDINGS, obj)?;
    }
    Ok(())
}
