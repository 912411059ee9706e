//! The objects the controllers make: pods from templates, their statuses as the kubelet
//! reports them, ReplicaSets and DaemonSets, and the revisions that tell templates apart.

use super::*;

pub(super) fn cluster_created(shared: &Shared) -> String {
    crate::time::rfc3339(crate::time::days_ago(shared.scenario.cluster.age_days))
}

/// A stable 10-hex-digit pod-template-hash for a workload.
pub(super) fn template_hash(ns: &str, name: &str) -> String {
    crate::ids::short_hash(&format!("{ns}/{name}"))
}

pub(super) fn container_id() -> String {
    format!(
        "containerd://{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

pub(super) static NEXT_POD_IP: AtomicU32 = AtomicU32::new(0);

pub(super) fn pod_ip(node: &NodeInfo) -> String {
    let n = NEXT_POD_IP.fetch_add(1, Ordering::Relaxed);
    format!("{}.{}", node.cidr, 2 + n % 250)
}

pub(super) fn default_tolerations() -> Vec<Value> {
    vec![
        json!({"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}),
        json!({"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}),
    ]
}

pub(super) fn daemonset_tolerations() -> Vec<Value> {
    let mut t = vec![json!({"operator": "Exists"})];
    for (key, effect) in [
        ("node.kubernetes.io/not-ready", "NoExecute"),
        ("node.kubernetes.io/unreachable", "NoExecute"),
        ("node.kubernetes.io/disk-pressure", "NoSchedule"),
        ("node.kubernetes.io/memory-pressure", "NoSchedule"),
        ("node.kubernetes.io/pid-pressure", "NoSchedule"),
        ("node.kubernetes.io/unschedulable", "NoSchedule"),
    ] {
        t.push(json!({"key": key, "operator": "Exists", "effect": effect}));
    }
    t
}

pub(super) fn node_selector(w: &Workload) -> Value {
    let mut sel = json!({"kubernetes.io/os": "linux"});
    if let Some(p) = &w.pool {
        sel["agentpool"] = json!(p);
    }
    sel
}

pub(super) fn pod_spec(w: &Workload, tolerations: Vec<Value>) -> Value {
    let mut requests = serde_json::Map::new();
    for (key, q) in [("cpu", &w.requests.cpu), ("memory", &w.requests.memory)] {
        if let Some(q) = q {
            requests.insert(key.into(), json!(q.as_str()));
        }
    }
    let resources = if requests.is_empty() {
        json!({})
    } else {
        json!({"requests": requests})
    };
    let mut container = json!({
        "name": w.name,
        "image": w.image,
        "imagePullPolicy": "IfNotPresent",
        "resources": resources,
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
    });
    let mut spec = json!({
        "containers": [],
        "restartPolicy": "Always",
        "terminationGracePeriodSeconds": w.termination_grace_seconds,
        "dnsPolicy": "ClusterFirst",
        "nodeSelector": node_selector(w),
        "serviceAccountName": "default",
        "securityContext": {},
        "schedulerName": "default-scheduler",
        "tolerations": tolerations,
        "priority": 0,
        "enableServiceLinks": true,
        "preemptionPolicy": "PreemptLowerPriority",
    });
    if w.empty_dir {
        container["volumeMounts"] = json!([{"name": "scratch", "mountPath": "/data"}]);
        spec["volumes"] = json!([{"name": "scratch", "emptyDir": {}}]);
    }
    spec["containers"] = json!([container]);
    spec
}

pub(super) fn template(w: &Workload, labels: Value, tolerations: Vec<Value>) -> Value {
    json!({"metadata": {"labels": labels}, "spec": pod_spec(w, tolerations)})
}

pub(super) fn owner_ref(api_version: &str, kind: &str, obj: &Value) -> Value {
    json!({
        "apiVersion": api_version,
        "kind": kind,
        "name": obj["metadata"]["name"],
        "uid": obj["metadata"]["uid"],
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

/// A new (Pending, unscheduled) pod from a controller's template.
pub(super) fn pod_from_template(tpl: &Value, ns: &str, prefix: &str, owner: Value) -> Value {
    let mut spec = tpl["spec"].clone();
    let mut tol = spec["tolerations"].as_array().cloned().unwrap_or_default();
    for d in default_tolerations() {
        if !tol.iter().any(|t| t["key"] == d["key"] && t["effect"] == d["effect"]) {
            tol.push(d);
        }
    }
    spec["tolerations"] = json!(tol);
    let mut meta = json!({
        "generateName": format!("{prefix}-"),
        "namespace": ns,
        "labels": tpl["metadata"]["labels"].clone(),
        "ownerReferences": [owner],
    });
    if let Some(a) = tpl["metadata"]["annotations"].as_object() {
        meta["annotations"] = json!(a);
    }
    let qos = pods::qos_class(&spec);
    json!({"metadata": meta, "spec": spec, "status": {"phase": "Pending", "qosClass": qos}})
}

pub(super) fn condition(kind: &str, status: &str, at: &str) -> Value {
    json!({"type": kind, "status": status, "lastProbeTime": null, "lastTransitionTime": at})
}

/// Scheduled, containers being created.
pub(super) fn scheduled_status(pod: &Value, node: &NodeInfo, now: &str) -> Value {
    let statuses: Vec<Value> = containers(pod)
        .iter()
        .map(|c| {
            json!({"name": c["name"], "image": c["image"], "imageID": "", "ready": false, "restartCount": 0, "started": false,
                   "state": {"waiting": {"reason": "ContainerCreating"}}, "lastState": {}})
        })
        .collect();
    let mut not_ready = condition("Ready", "False", now);
    not_ready["reason"] = json!("ContainersNotReady");
    not_ready["message"] = json!(format!("containers with unready status: [{}]", names(pod).join(" ")));
    let mut cnr = not_ready.clone();
    cnr["type"] = json!("ContainersReady");
    json!({
        "phase": "Pending",
        "conditions": [
            condition("PodReadyToStartContainers", "False", now),
            condition("Initialized", "True", now),
            not_ready,
            cnr,
            condition("PodScheduled", "True", now),
        ],
        "hostIP": node.ip,
        "hostIPs": [{"ip": node.ip}],
        "startTime": now,
        "containerStatuses": statuses,
        "qosClass": pods::qos_class(&pod["spec"]),
    })
}

pub(super) fn containers(pod: &Value) -> Vec<Value> {
    pod["spec"]["containers"].as_array().cloned().unwrap_or_default()
}

pub(super) fn names(pod: &Value) -> Vec<String> {
    containers(pod)
        .iter()
        .filter_map(|c| c["name"].as_str().map(str::to_string))
        .collect()
}

/// Running and Ready on `node`, keeping the pod's IP and start time if it has them.
pub(super) fn running_status(pod: &Value, node: &NodeInfo, now: &str, restarted: bool) -> Value {
    let old = &pod["status"];
    let ip = old["podIP"]
        .as_str()
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .unwrap_or_else(|| pod_ip(node));
    let start = old["startTime"].as_str().unwrap_or(now).to_string();
    let prev: Vec<Value> = old["containerStatuses"].as_array().cloned().unwrap_or_default();
    let statuses: Vec<Value> = containers(pod)
        .iter()
        .map(|c| {
            let p = prev.iter().find(|p| p["name"] == c["name"]);
            let count = p.and_then(|p| p["restartCount"].as_i64()).unwrap_or(0) + i64::from(restarted);
            let mut s = json!({"name": c["name"], "image": c["image"], "imageID": format!("{}@sha256:{}{}", c["image"].as_str().unwrap_or("").split(':').next().unwrap_or(""), uuid::Uuid::new_v4().simple(), uuid::Uuid::new_v4().simple()),
                   "containerID": container_id(), "ready": true, "restartCount": count, "started": true,
                   "state": {"running": {"startedAt": now}}, "lastState": {}});
            if restarted {
                s["lastState"] = json!({"terminated": {"exitCode": 255, "reason": "Unknown", "startedAt": start, "finishedAt": now}});
            }
            s
        })
        .collect();
    json!({
        "phase": "Running",
        "conditions": [
            condition("PodReadyToStartContainers", "True", now),
            condition("Initialized", "True", &start),
            condition("Ready", "True", now),
            condition("ContainersReady", "True", now),
            condition("PodScheduled", "True", &start),
        ],
        "hostIP": node.ip,
        "hostIPs": [{"ip": node.ip}],
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "startTime": start,
        "containerStatuses": statuses,
        "qosClass": pods::qos_class(&pod["spec"]),
    })
}

/// A `restartPolicy: Never` pod whose node rebooted: its containers ended with the machine.
pub(super) fn failed_after_reboot_status(pod: &Value, now: &str) -> Value {
    let old = &pod["status"];
    let statuses: Vec<Value> = containers(pod)
        .iter()
        .map(|c| {
            json!({"name": c["name"], "image": c["image"], "imageID": "", "ready": false, "restartCount": 0, "started": false,
                   "state": {"terminated": {"exitCode": 137, "reason": "Error", "finishedAt": now,
                       "startedAt": old["startTime"].clone()}}, "lastState": {}})
        })
        .collect();
    let mut not_ready = condition("Ready", "False", now);
    not_ready["reason"] = json!("PodFailed");
    json!({
        "phase": "Failed",
        "reason": "NodeRebooted",
        "message": "The node rebooted; the pod's containers were not restarted (restartPolicy: Never)",
        "conditions": [not_ready, condition("PodScheduled", "True", now)],
        "hostIP": old["hostIP"].clone(),
        "hostIPs": old["hostIPs"].clone(),
        "podIP": old["podIP"].clone(),
        "startTime": old["startTime"].clone(),
        "containerStatuses": statuses,
        "qosClass": old["qosClass"].clone(),
    })
}

/// The node stopped being Ready: so do its pods (the node lifecycle controller's
/// MarkPodsNotReady), keeping everything else.
pub(super) fn mark_not_ready(pod: &mut Value, now: &str) {
    if let Some(conds) = pod["status"]["conditions"].as_array_mut() {
        for c in conds.iter_mut() {
            if (c["type"] == "Ready" || c["type"] == "ContainersReady") && c["status"] != "False" {
                c["status"] = json!("False");
                c["lastTransitionTime"] = json!(now);
            }
        }
    }
    if let Some(cs) = pod["status"]["containerStatuses"].as_array_mut() {
        for c in cs.iter_mut() {
            c["ready"] = json!(false);
        }
    }
}

pub(super) fn replicaset_for(deploy: &Value, created: Option<&str>) -> Value {
    let m = &deploy["metadata"];
    let hash = template_hash(
        m["namespace"].as_str().unwrap_or("default"),
        m["name"].as_str().unwrap_or(""),
    );
    replicaset_with(deploy, created, &hash, 1)
}

/// A Deployment's ReplicaSet for its current template, named by `hash`, at `revision`.
pub(super) fn replicaset_with(deploy: &Value, created: Option<&str>, hash: &str, revision: i64) -> Value {
    let m = &deploy["metadata"];
    let name = m["name"].as_str().unwrap_or("");
    let ns = m["namespace"].as_str().unwrap_or("default");
    let replicas = deploy["spec"]["replicas"].as_i64().unwrap_or(1);
    let mut tpl = deploy["spec"]["template"].clone();
    if !tpl["metadata"]["labels"].is_object() {
        tpl["metadata"]["labels"] = json!({});
    }
    tpl["metadata"]["labels"]["pod-template-hash"] = json!(hash);
    let mut labels = tpl["metadata"]["labels"].clone();
    if labels.is_null() {
        labels = json!({});
    }
    let mut selector = deploy["spec"]["selector"].clone();
    if !selector["matchLabels"].is_object() {
        selector["matchLabels"] = json!({});
    }
    selector["matchLabels"]["pod-template-hash"] = json!(hash);
    let mut meta = json!({
        "name": format!("{name}-{hash}"),
        "namespace": ns,
        "labels": labels,
        "annotations": {
            "deployment.kubernetes.io/desired-replicas": replicas.to_string(),
            "deployment.kubernetes.io/max-replicas": (replicas + 1).to_string(),
            "deployment.kubernetes.io/revision": revision.to_string(),
        },
        "ownerReferences": [owner_ref("apps/v1", "Deployment", deploy)],
    });
    if let Some(c) = created {
        meta["creationTimestamp"] = json!(c);
    }
    json!({"metadata": meta, "spec": {"replicas": replicas, "selector": selector, "template": tpl}, "status": {}})
}

pub(super) fn daemonset(w: &Workload, labels: &Value, created: &str) -> Value {
    let tpl = template(w, labels.clone(), daemonset_tolerations());
    json!({
        "metadata": {"name": w.name, "namespace": w.namespace, "labels": labels,
                     "annotations": {"deprecated.daemonset.template.generation": "1"}, "creationTimestamp": created},
        "spec": {"selector": {"matchLabels": labels}, "template": tpl,
                 "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}},
                 "revisionHistoryLimit": 10},
        "status": {},
    })
}

pub(super) fn mirror_name(w: &Workload, node: &str) -> String {
    format!("{}-{node}", w.name)
}

/// A ReplicaSet's template without its `pod-template-hash` label: what its Deployment's
/// template was when it was made.
pub(super) fn template_of(rs: &Value) -> Value {
    let mut t = rs["spec"]["template"].clone();
    if let Some(l) = t["metadata"]["labels"].as_object_mut() {
        l.remove("pod-template-hash");
    }
    t
}

pub(super) fn revision_of(o: &Value) -> i64 {
    o["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
        .as_str()
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}
/// The label pods of a StatefulSet or DaemonSet carry: which template they were made from.
pub(super) const REVISION_LABEL: &str = "controller-revision-hash";

/// A stable 10-hex-digit hash of any JSON value (a pod template).
pub(super) fn content_hash(v: &Value) -> String {
    crate::ids::short_hash(&v.to_string())
}

/// The revision a StatefulSet's or DaemonSet's pods should carry.
pub(super) fn revision(obj: &Value) -> String {
    format!("{}-{}", name(obj), content_hash(&obj["spec"]["template"]))
}

pub(super) fn label_revision(pod: &mut Value, rev: &str) {
    if !pod["metadata"]["labels"].is_object() {
        pod["metadata"]["labels"] = json!({});
    }
    pod["metadata"]["labels"][REVISION_LABEL] = json!(rev);
}

pub(super) fn pod_revision(p: &Value) -> &str {
    p["metadata"]["labels"][REVISION_LABEL].as_str().unwrap_or("")
}
