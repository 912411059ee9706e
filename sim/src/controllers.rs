//! The cluster's control loops, as far as the emulation needs them: the ReplicaSet,
//! Deployment, DaemonSet and disruption (PDB) controllers, the scheduler, a kubelet
//! that starts pods after `timing.podStartSeconds` and marks them NotReady while their
//! node is, the garbage collector, the node lifecycle controller's unschedulable taint,
//! and the scenario's initial workloads (`seed`). Pods on a node that reboots are kept
//! (not recreated): they turn NotReady with the node and Ready again after it is back,
//! with their restart count bumped.

use crate::events::kinds;
use crate::objects::pods::{self, DeleteOpts};
use crate::objects::selector;
use crate::recorder;
use crate::scenario::{Workload, WorkloadKind};
use crate::store::{self, StoreError, DAEMONSETS, DEPLOYMENTS, NAMESPACES, NODES, PDBS, PODS, REPLICASETS};
use crate::Shared;
use anyhow::Context;
use jiff::{SignedDuration, Timestamp};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod workloads;
pub use workloads::RUN_SECONDS_ANNOTATION;

/// The kured lock annotation on the kube-system/kured DaemonSet.
pub const KURED_LOCK_ANNOTATION: &str = "weave.works/kured-node-lock";
const UNSCHEDULABLE_TAINT: &str = "node.kubernetes.io/unschedulable";
/// The disruption controller forgets a disrupted pod that was not deleted after this long.
const DISRUPTED_POD_TIMEOUT: i64 = 120;

// ---------------------------------------------------------------------------------
// Nodes as the scheduler and kubelet see them

#[derive(Debug, Clone)]
struct NodeInfo {
    name: String,
    labels: Value,
    ready: bool,
    unschedulable: bool,
    taints: Vec<Value>,
    ip: String,
    boot_id: String,
    uid: String,
    /// The node's pod CIDR without its last octet (`10.244.7` of 10.244.7.0/24).
    cidr: String,
}

fn node_infos(shared: &Shared) -> Vec<NodeInfo> {
    let objs = shared.store.list(NODES, None);
    let order: HashMap<&str, usize> = shared
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.name.as_str(), i))
        .collect();
    let mut out: Vec<(usize, NodeInfo)> = objs
        .iter()
        .map(|n| {
            let name = n["metadata"]["name"].as_str().unwrap_or("").to_string();
            let cidr = n["spec"]["podCIDR"]
                .as_str()
                .and_then(|c| c.rsplit_once('.'))
                .map(|(p, _)| p.to_string())
                .unwrap_or_else(|| "10.244.0".into());
            let info = NodeInfo {
                labels: n["metadata"]["labels"].clone(),
                ready: crate::model::ready_status(n) == "True",
                unschedulable: n["spec"]["unschedulable"].as_bool().unwrap_or(false),
                taints: n["spec"]["taints"].as_array().cloned().unwrap_or_default(),
                ip: crate::model::node_address(n, "InternalIP"),
                boot_id: n["status"]["nodeInfo"]["bootID"].as_str().unwrap_or("").to_string(),
                uid: n["metadata"]["uid"].as_str().unwrap_or("").to_string(),
                cidr,
                name: name.clone(),
            };
            (order.get(name.as_str()).copied().unwrap_or(usize::MAX), info)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.name.cmp(&b.1.name)));
    out.into_iter().map(|(_, n)| n).collect()
}

fn tolerates(tolerations: &[Value], taint: &Value) -> bool {
    tolerations.iter().any(|t| {
        let effect_ok = t["effect"]
            .as_str()
            .is_none_or(|e| e.is_empty() || Some(e) == taint["effect"].as_str());
        let op = t["operator"].as_str().unwrap_or("Equal");
        let key = t["key"].as_str().unwrap_or("");
        let key_ok = if key.is_empty() {
            op == "Exists"
        } else {
            Some(key) == taint["key"].as_str()
        };
        let value_ok = op == "Exists" || t["value"].as_str().unwrap_or("") == taint["value"].as_str().unwrap_or("");
        effect_ok && key_ok && value_ok
    })
}

fn selector_fits(node_selector: &Value, labels: &Value) -> bool {
    let os_given = node_selector.get("kubernetes.io/os").is_some();
    // The emulated containers are Linux images: no Windows node unless asked for.
    if !os_given && labels["kubernetes.io/os"] != "linux" {
        return false;
    }
    node_selector
        .as_object()
        .is_none_or(|m| m.iter().all(|(k, v)| labels.get(k) == Some(v)))
}

/// One `matchExpressions` requirement of a node selector term against the node's labels, as
/// the scheduler's NodeAffinity plugin matches it (an invalid one matches nothing).
fn requirement_fits(r: &Value, labels: &Value) -> bool {
    let key = r["key"].as_str().unwrap_or("");
    let values: Vec<&str> = r["values"]
        .as_array()
        .map(|v| v.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let label = labels[key].as_str();
    match r["operator"].as_str().unwrap_or("") {
        "In" => !values.is_empty() && label.is_some_and(|l| values.contains(&l)),
        "NotIn" => !values.is_empty() && label.is_none_or(|l| !values.contains(&l)),
        "Exists" => values.is_empty() && label.is_some(),
        "DoesNotExist" => values.is_empty() && label.is_none(),
        op @ ("Gt" | "Lt") => {
            let (Some(Ok(bound)), Some(Ok(value))) = (
                (values.len() == 1).then(|| values[0].parse::<i64>()),
                label.map(str::parse::<i64>),
            ) else {
                return false;
            };
            if op == "Gt" {
                value > bound
            } else {
                value < bound
            }
        }
        _ => false,
    }
}

/// The pod's required node affinity: one of its terms (all of whose requirements hold) matches;
/// an empty term, or no term at all, matches nothing; no required affinity matches every node.
fn affinity_fits(spec: &Value, node: &NodeInfo) -> bool {
    let required = &spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"];
    if required.is_null() {
        return true;
    }
    let empty = vec![];
    required["nodeSelectorTerms"]
        .as_array()
        .unwrap_or(&empty)
        .iter()
        .any(|term| {
            let exprs = term["matchExpressions"].as_array().unwrap_or(&empty);
            let fields = term["matchFields"].as_array().unwrap_or(&empty);
            (!exprs.is_empty() || !fields.is_empty())
                && exprs.iter().all(|r| requirement_fits(r, &node.labels))
                && fields.iter().all(|f| {
                    f["key"] == "metadata.name"
                        && requirement_fits(f, &json!({"metadata.name": node.name}))
                        && matches!(f["operator"].as_str(), Some("In" | "NotIn"))
                })
        })
}

/// Why the scheduler cannot put a pod with this spec on the node, in kube-scheduler's words
/// (its filters in their default order: NodeUnschedulable, TaintToleration, NodeAffinity; a
/// node that is not Ready counts as its `not-ready` taint would), or `None` when it can.
fn misfit(spec: &Value, node: &NodeInfo) -> Option<String> {
    let tolerations = spec["tolerations"].as_array().cloned().unwrap_or_default();
    if node.unschedulable
        && !tolerates(
            &tolerations,
            &json!({"key": UNSCHEDULABLE_TAINT, "effect": "NoSchedule"}),
        )
    {
        return Some("node(s) were unschedulable".into());
    }
    let not_ready = json!({"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"});
    let untolerated = node.taints.iter().chain((!node.ready).then_some(&not_ready)).find(|t| {
        let effect = t["effect"].as_str().unwrap_or("");
        (effect == "NoSchedule" || effect == "NoExecute") && !tolerates(&tolerations, t)
    });
    if let Some(t) = untolerated {
        return Some(format!(
            "node(s) had untolerated taint {{{}: {}}}",
            t["key"].as_str().unwrap_or(""),
            t["value"].as_str().unwrap_or("")
        ));
    }
    if !selector_fits(&spec["nodeSelector"], &node.labels) || !affinity_fits(spec, node) {
        return Some("node(s) didn't match Pod's node affinity/selector".into());
    }
    None
}

/// Can the scheduler put a pod with this spec on the node?
fn fits(spec: &Value, node: &NodeInfo) -> bool {
    misfit(spec, node).is_none()
}

/// kube-scheduler's FailedScheduling message for a pod no node fits: how many nodes fail on
/// what, sorted, then the preemption verdict.
fn failed_scheduling_message(spec: &Value, nodes: &[NodeInfo]) -> String {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for n in nodes {
        if let Some(why) = misfit(spec, n) {
            *counts.entry(why).or_default() += 1;
        }
    }
    let mut reasons: Vec<String> = counts.iter().map(|(why, k)| format!("{k} {why}")).collect();
    reasons.sort();
    let n = nodes.len();
    format!(
        "0/{n} nodes are available: {}. preemption: 0/{n} nodes are available: {n} Preemption is not helpful for scheduling.",
        reasons.join(", ")
    )
}

// ---------------------------------------------------------------------------------
// Object builders

fn cluster_created(shared: &Shared) -> String {
    crate::time::rfc3339(crate::time::days_ago(shared.scenario.cluster.age_days))
}

/// A stable 10-hex-digit pod-template-hash for a workload.
fn template_hash(ns: &str, name: &str) -> String {
    crate::ids::short_hash(&format!("{ns}/{name}"))
}

fn container_id() -> String {
    format!(
        "containerd://{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

static NEXT_POD_IP: AtomicU32 = AtomicU32::new(0);

fn pod_ip(node: &NodeInfo) -> String {
    let n = NEXT_POD_IP.fetch_add(1, Ordering::Relaxed);
    format!("{}.{}", node.cidr, 2 + n % 250)
}

fn default_tolerations() -> Vec<Value> {
    vec![
        json!({"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}),
        json!({"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}),
    ]
}

fn daemonset_tolerations() -> Vec<Value> {
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

fn node_selector(w: &Workload) -> Value {
    let mut sel = json!({"kubernetes.io/os": "linux"});
    if let Some(p) = &w.pool {
        sel["agentpool"] = json!(p);
    }
    sel
}

fn pod_spec(w: &Workload, tolerations: Vec<Value>) -> Value {
    let mut container = json!({
        "name": w.name,
        "image": w.image,
        "imagePullPolicy": "IfNotPresent",
        "resources": {},
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

fn template(w: &Workload, labels: Value, tolerations: Vec<Value>) -> Value {
    json!({"metadata": {"labels": labels}, "spec": pod_spec(w, tolerations)})
}

fn owner_ref(api_version: &str, kind: &str, obj: &Value) -> Value {
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
fn pod_from_template(tpl: &Value, ns: &str, prefix: &str, owner: Value) -> Value {
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
    json!({"metadata": meta, "spec": spec, "status": {"phase": "Pending", "qosClass": "BestEffort"}})
}

fn condition(kind: &str, status: &str, at: &str) -> Value {
    json!({"type": kind, "status": status, "lastProbeTime": null, "lastTransitionTime": at})
}

/// Scheduled, containers being created.
fn scheduled_status(pod: &Value, node: &NodeInfo, now: &str) -> Value {
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
        "qosClass": "BestEffort",
    })
}

fn containers(pod: &Value) -> Vec<Value> {
    pod["spec"]["containers"].as_array().cloned().unwrap_or_default()
}

fn names(pod: &Value) -> Vec<String> {
    containers(pod)
        .iter()
        .filter_map(|c| c["name"].as_str().map(str::to_string))
        .collect()
}

/// Running and Ready on `node`, keeping the pod's IP and start time if it has them.
fn running_status(pod: &Value, node: &NodeInfo, now: &str, restarted: bool) -> Value {
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
        "qosClass": "BestEffort",
    })
}

/// A `restartPolicy: Never` pod whose node rebooted: its containers ended with the machine.
fn failed_after_reboot_status(pod: &Value, now: &str) -> Value {
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
fn mark_not_ready(pod: &mut Value, now: &str) {
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

// ---------------------------------------------------------------------------------
// Seeding the scenario's workloads

fn ensure_namespace(shared: &Shared, ns: &str, created: &str) -> anyhow::Result<()> {
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

fn create_running_pod(shared: &Shared, mut pod: Value, node: &NodeInfo, created: &str) -> anyhow::Result<Value> {
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
    let created = cluster_created(shared);
    let nodes = node_infos(shared);
    let mut per_node: HashMap<String, usize> = HashMap::new();
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
        seed_workload(shared, w, &nodes, &created, &mut per_node).with_context(|| {
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
            workloads::label_revision(&mut pod, &workloads::revision(&ds));
            pod["spec"]["nodeName"] = json!(n.name);
            create_running_pod(shared, pod, n, &created)?;
        }
    }
    // Statuses (PDB allowances, replica counts) before anything is served.
    let mut state = State::default();
    reconcile(shared, &mut state);
    Ok(())
}

fn kind_name(k: WorkloadKind) -> &'static str {
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

fn seed_workload(
    shared: &Shared,
    w: &Workload,
    nodes: &[NodeInfo],
    created: &str,
    per_node: &mut HashMap<String, usize>,
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
            let mut mine: HashMap<String, usize> = HashMap::new();
            for _ in 0..w.replicas {
                let pod = pod_from_template(
                    &rs["spec"]["template"],
                    &w.namespace,
                    &rs_name,
                    owner_ref("apps/v1", "ReplicaSet", &rs),
                );
                match pick_node(&pod["spec"], nodes, &mine, per_node) {
                    Some(n) => {
                        create_running_pod(shared, pod, n, created)?;
                        *mine.entry(n.name.clone()).or_default() += 1;
                        *per_node.entry(n.name.clone()).or_default() += 1;
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
                workloads::label_revision(&mut pod, &workloads::revision(&ds));
                pod["spec"]["nodeName"] = json!(n.name);
                create_running_pod(shared, pod, n, created)?;
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
            create_running_pod(shared, pod, n, created)?;
        }
        WorkloadKind::StaticPod => {
            let Some(n) = first_node(nodes, w) else {
                anyhow::bail!("no Linux node{} to run the static pod on", pool_hint(w));
            };
            create_mirror_pod(shared, w, n, created)?;
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
            let mut mine: HashMap<String, usize> = HashMap::new();
            for i in 0..w.replicas as i64 {
                let pod = workloads::statefulset_pod(&sts, i);
                match pick_node(&pod["spec"], nodes, &mine, per_node) {
                    Some(n) => {
                        create_running_pod(shared, pod, n, created)?;
                        *mine.entry(n.name.clone()).or_default() += 1;
                        *per_node.entry(n.name.clone()).or_default() += 1;
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
fn seed_job(shared: &Shared, w: &Workload, nodes: &[NodeInfo], labels: &Value, created: &str) -> anyhow::Result<()> {
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
        let mut j = workloads::job_for(&cj, last);
        j["metadata"]["creationTimestamp"] = json!(ts(last));
        shared.store.update_with(store::CRONJOBS, Some(&w.namespace), &w.name, None, |o| {
            o["status"] = json!({"lastScheduleTime": ts(last), "lastSuccessfulTime": ts(last + SignedDuration::from_secs(5))});
            Ok(())
        })?;
        j
    } else {
        let juid = uuid::Uuid::new_v4().to_string();
        let mut t = tpl.clone();
        for (k, v) in [
            ("batch.kubernetes.io/controller-uid", juid.clone()),
            ("controller-uid", juid.clone()),
            ("batch.kubernetes.io/job-name", w.name.clone()),
            ("job-name", w.name.clone()),
        ] {
            t["metadata"]["labels"][k] = json!(v);
        }
        json!({
            "metadata": {"name": w.name, "namespace": w.namespace, "uid": juid, "labels": labels,
                         "creationTimestamp": ts(ran_at)},
            "spec": {"completions": 1, "parallelism": 1, "backoffLimit": 6, "completionMode": "NonIndexed", "suspend": false,
                     "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": juid}}, "template": t},
        })
    };
    let done = ran_at + SignedDuration::from_secs(5);
    let mut job = job;
    job["status"] = workloads::complete_status(&ts(ran_at), &ts(done), 1);
    let job = shared.store.create(store::JOBS, job)?;
    let mut pod = workloads::job_pod(&job);
    let Some(n) = pick_node(&pod["spec"], nodes, &HashMap::new(), &HashMap::new()) else {
        return Ok(());
    };
    pod["metadata"]["name"] = json!(format!("{}-{}", name(&job), &store::random_suffix()));
    pod["metadata"]["creationTimestamp"] = json!(ts(ran_at));
    pod["spec"]["nodeName"] = json!(n.name);
    let running = running_status(&pod, n, &ts(ran_at), false);
    pod["status"] = running;
    pod["status"] = workloads::succeeded_status(&pod, &ts(done));
    shared.store.create(PODS, pod)?;
    Ok(())
}

fn pool_hint(w: &Workload) -> String {
    w.pool.as_ref().map(|p| format!(" in pool `{p}`")).unwrap_or_default()
}

fn first_node<'a>(nodes: &'a [NodeInfo], w: &Workload) -> Option<&'a NodeInfo> {
    nodes.iter().find(|n| selector_fits(&node_selector(w), &n.labels))
}

fn replicaset_for(deploy: &Value, created: Option<&str>) -> Value {
    let m = &deploy["metadata"];
    let hash = template_hash(
        m["namespace"].as_str().unwrap_or("default"),
        m["name"].as_str().unwrap_or(""),
    );
    replicaset_with(deploy, created, &hash, 1)
}

/// A Deployment's ReplicaSet for its current template, named by `hash`, at `revision`.
fn replicaset_with(deploy: &Value, created: Option<&str>, hash: &str, revision: i64) -> Value {
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

fn daemonset(w: &Workload, labels: &Value, created: &str) -> Value {
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

fn mirror_name(w: &Workload, node: &str) -> String {
    format!("{}-{node}", w.name)
}

fn create_mirror_pod(shared: &Shared, w: &Workload, node: &NodeInfo, created: &str) -> anyhow::Result<Value> {
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

/// The node for a new pod: fits, then fewest pods of the same owner, then fewest pods.
fn pick_node<'a>(
    spec: &Value,
    nodes: &'a [NodeInfo],
    mine: &HashMap<String, usize>,
    all: &HashMap<String, usize>,
) -> Option<&'a NodeInfo> {
    nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| fits(spec, n))
        .min_by_key(|(i, n)| {
            (
                mine.get(&n.name).copied().unwrap_or(0),
                all.get(&n.name).copied().unwrap_or(0),
                *i,
            )
        })
        .map(|(_, n)| n)
}

// ---------------------------------------------------------------------------------
// The control loop

#[derive(Default)]
struct State {
    /// When the kubelet began starting a pod (by uid).
    starting: HashMap<String, Instant>,
    /// The node's bootID when the pod last turned Ready (by uid).
    boot_seen: HashMap<String, String>,
    /// The kured lock annotation last seen (None before the first look).
    kured_lock: Option<Option<String>>,
    /// When each running pod of a Job turned Ready (by uid): it succeeds after its run time.
    job_running: HashMap<String, Instant>,
    /// The minute each CronJob's schedule was last checked in (by uid).
    cron_checked: HashMap<String, i64>,
}

/// Run the controllers until shutdown: after every change to the store (coalesced) and
/// at least every 5 seconds, or every 50 ms while pods are starting.
pub async fn run(shared: Arc<Shared>) {
    let mut rx = shared.store.subscribe();
    let mut shutdown = shared.shutdown.clone();
    let mut state = State::default();
    // Faults do not change the store: a `pdb-never-allows` must still show in the
    // budget's status at once.
    let pdb_faults = |s: &Shared| s.faults.describe()["pdbNeverAllows"].to_string();
    let mut faults_seen = pdb_faults(&shared);
    // What the controllers read of each node, as last seen.
    let mut node_seen: HashMap<String, Value> = HashMap::new();
    loop {
        if *shutdown.borrow() {
            return;
        }
        let t0 = Instant::now();
        reconcile(&shared, &mut state);
        let cost = t0.elapsed();
        tracing::debug!(elapsed_ms = cost.as_millis() as u64, "controllers reconciled");
        // On a big cluster a round is expensive: let changes gather for twice as long as a
        // round takes, so that the controllers never use more than a third of a core.
        let settle = (cost * 2).clamp(Duration::from_millis(20), Duration::from_secs(2));
        let deadline = tokio::time::Instant::now()
            + if !state.starting.is_empty() {
                Duration::from_millis(50)
            } else if !state.job_running.is_empty() {
                Duration::from_millis(100)
            } else {
                // Idle: a round every 5 s, or every ten rounds' worth of time on a cluster
                // where a round is expensive (thousands of nodes).
                (cost * 10).max(Duration::from_secs(5))
            };
        loop {
            tokio::select! {
                r = rx.recv() => {
                    match r {
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                        // Lease renewals and events are no business of these controllers:
                        // reconciling on every kubelet heartbeat would only burn CPU.
                        Ok(c) if c.resource == store::LEASES || c.resource == store::EVENTS => continue,
                        // Nor is a node status post that changes nothing they read.
                        Ok(c) if c.resource == NODES && c.kind == store::WatchKind::Modified => {
                            let name = c.object["metadata"]["name"].as_str().unwrap_or("").to_string();
                            let seen = node_facts(&c.object);
                            if node_seen.insert(name, seen.clone()).as_ref() == Some(&seen) {
                                continue;
                            }
                        }
                        _ => {}
                    }
                    // Let a burst of changes settle, then take them all at once.
                    tokio::time::sleep(settle).await;
                    while rx.try_recv().is_ok() {}
                    break;
                }
                _ = tokio::time::sleep_until(deadline.min(tokio::time::Instant::now() + Duration::from_millis(250))) => {
                    let f = pdb_faults(&shared);
                    if f != faults_seen {
                        faults_seen = f;
                        break;
                    }
                    if tokio::time::Instant::now() >= deadline {
                        break;
                    }
                }
                _ = shutdown.changed() => return,
            }
        }
    }
}

fn now() -> String {
    crate::time::now_rfc3339()
}

/// The parts of a Node the controllers act on (not its heartbeat times).
fn node_facts(n: &Value) -> Value {
    json!([
        n["metadata"]["labels"],
        n["spec"]["unschedulable"],
        n["spec"]["taints"],
        crate::model::ready_status(n),
        n["status"]["nodeInfo"]["bootID"],
    ])
}

fn uid(o: &Value) -> &str {
    o["metadata"]["uid"].as_str().unwrap_or("")
}

fn name(o: &Value) -> &str {
    o["metadata"]["name"].as_str().unwrap_or("")
}

fn namespace(o: &Value) -> &str {
    o["metadata"]["namespace"].as_str().unwrap_or("default")
}

fn owned_by<'a>(pods: &'a [Value], owner_uid: &str) -> Vec<&'a Value> {
    pods.iter()
        .filter(|p| pods::controller_ref(p).is_some_and(|r| r["uid"] == owner_uid))
        .collect()
}

/// Active pods by the uid of their controller.
fn by_owner(pods: &[Value]) -> HashMap<&str, Vec<&Value>> {
    let mut m: HashMap<&str, Vec<&Value>> = HashMap::new();
    for p in pods.iter().filter(|p| active(p)) {
        if let Some(u) = pods::controller_ref(p).and_then(|r| r["uid"].as_str()) {
            m.entry(u).or_default().push(p);
        }
    }
    m
}

fn active(p: &Value) -> bool {
    !pods::is_terminating(p) && !matches!(pods::phase(p), "Succeeded" | "Failed")
}

fn warn_err<T>(what: &str, r: Result<T, StoreError>) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        // Somebody else changed or removed it meanwhile: the next round sees the new state.
        Err(StoreError::Conflict { .. }) | Err(StoreError::NotFound { .. }) => None,
        Err(e) => {
            tracing::warn!("controller: {what}: {e}");
            None
        }
    }
}

/// One round of every controller. The pod list is read once and read again only after
/// a step changed pods; what a step misses is seen by the next round, which the change
/// itself triggers.
fn reconcile(shared: &Arc<Shared>, st: &mut State) {
    let nodes = node_infos(shared);
    node_lifecycle(shared);
    namespaces(shared);
    workloads::terminating_namespaces(shared);
    deployments(shared);
    workloads::cronjobs(shared, st);
    // Budgets are read before any pod list their status is computed from: see pdb_status.
    let budgets = shared.store.list(PDBS, None);
    let mut all = shared.store.list(PODS, None);
    let mut wrote = garbage_collect(shared, &all);
    wrote |= replicasets(shared, &all);
    wrote |= daemonsets(shared, &nodes, &all);
    wrote |= workloads::daemonset_rollout(shared, &all);
    wrote |= workloads::statefulsets(shared, &all);
    wrote |= workloads::jobs(shared, &all);
    wrote |= static_pods(shared, &nodes);
    if wrote {
        all = shared.store.list(PODS, None);
    }
    if schedule(shared, &nodes, &all) {
        all = shared.store.list(PODS, None);
    }
    if kubelet(shared, &nodes, st, &all) {
        all = shared.store.list(PODS, None);
    }
    let owners = by_owner(&all);
    workload_status(shared, &nodes, &owners);
    workloads::statefulset_status(shared, &owners);
    pdb_status(shared, budgets, &all);
    kured_lock(shared, st);
}

/// The unschedulable taint follows spec.unschedulable.
fn node_lifecycle(shared: &Shared) {
    for n in shared.store.list(NODES, None) {
        let cordoned = n["spec"]["unschedulable"].as_bool().unwrap_or(false);
        let has = n["spec"]["taints"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t["key"] == UNSCHEDULABLE_TAINT));
        if cordoned == has {
            continue;
        }
        let r = shared.store.update_with(NODES, None, name(&n), None, |o| {
            let mut taints: Vec<Value> = o["spec"]["taints"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter(|t| t["key"] != UNSCHEDULABLE_TAINT)
                .collect();
            if o["spec"]["unschedulable"].as_bool().unwrap_or(false) {
                taints.push(json!({"key": UNSCHEDULABLE_TAINT, "effect": "NoSchedule", "timeAdded": now()}));
            }
            if taints.is_empty() {
                if let Some(s) = o["spec"].as_object_mut() {
                    s.remove("taints");
                }
            } else {
                o["spec"]["taints"] = json!(taints);
            }
            Ok(())
        });
        warn_err("node taints", r);
    }
}

fn namespaces(shared: &Shared) {
    for ns in shared.store.list(NAMESPACES, None) {
        if ns["status"]["phase"].is_string() {
            continue;
        }
        let r = shared.store.update_with(NAMESPACES, None, name(&ns), None, |o| {
            o["status"] = json!({"phase": "Active"});
            if !o["spec"]["finalizers"].is_array() {
                o["spec"]["finalizers"] = json!(["kubernetes"]);
            }
            let n = o["metadata"]["name"].clone();
            if !o["metadata"]["labels"].is_object() {
                o["metadata"]["labels"] = json!({});
            }
            o["metadata"]["labels"]["kubernetes.io/metadata.name"] = n;
            Ok(())
        });
        warn_err("namespace status", r);
    }
}

/// Pods whose ReplicaSet/DaemonSet is gone, and ReplicaSets whose Deployment is gone.
fn garbage_collect(shared: &Arc<Shared>, all: &[Value]) -> bool {
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

/// A ReplicaSet's template without its `pod-template-hash` label: what its Deployment's
/// template was when it was made.
fn template_of(rs: &Value) -> Value {
    let mut t = rs["spec"]["template"].clone();
    if let Some(l) = t["metadata"]["labels"].as_object_mut() {
        l.remove("pod-template-hash");
    }
    t
}

fn revision_of(o: &Value) -> i64 {
    o["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
        .as_str()
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

/// The Deployment's ReplicaSet for its current template, if there is one.
fn current_replicaset<'a>(d: &Value, mine: &[&'a Value]) -> Option<&'a Value> {
    let tpl = &d["spec"]["template"];
    mine.iter().copied().find(|rs| template_of(rs) == *tpl)
}

/// Each Deployment has a ReplicaSet for its current template, sized as the Deployment
/// says. A new template (`kubectl rollout restart`, a new image) gets a new ReplicaSet at
/// the next revision; the old ones shrink as the new pods turn Ready, so that the
/// Deployment never has fewer Ready pods than it wants (a rolling update with maxSurge
/// 100% and maxUnavailable 0).
fn deployments(shared: &Shared) {
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
                let hash = workloads::content_hash(&json!([ns, dname, d["spec"]["template"]]));
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

/// Each ReplicaSet keeps `replicas` active pods: missing ones are created (the scheduler
/// places them), extra ones deleted.
fn replicasets(shared: &Arc<Shared>, all: &[Value]) -> bool {
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

/// One active pod of each DaemonSet on every node its node selector admits.
fn daemonsets(shared: &Arc<Shared>, nodes: &[NodeInfo], all: &[Value]) -> bool {
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
                workloads::label_revision(&mut pod, &workloads::revision(&ds));
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

/// The kubelet recreates the mirror pod of a static pod when it is deleted.
fn static_pods(shared: &Shared, nodes: &[NodeInfo]) -> bool {
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

/// Bind pending pods to nodes.
fn schedule(shared: &Shared, nodes: &[NodeInfo], all: &[Value]) -> bool {
    let mut wrote = false;
    let mut per_node: HashMap<String, usize> = HashMap::new();
    let mut per_owner: HashMap<(String, String), usize> = HashMap::new();
    for p in all.iter().filter(|p| active(p)) {
        if let Some(n) = pods::node_name(p) {
            *per_node.entry(n.to_string()).or_default() += 1;
            if let Some(o) = pods::controller_ref(p) {
                *per_owner
                    .entry((o["uid"].as_str().unwrap_or("").to_string(), n.to_string()))
                    .or_default() += 1;
            }
        }
    }
    for p in all.iter().filter(|p| active(p) && pods::node_name(p).is_none()) {
        let owner = pods::controller_ref(p)
            .and_then(|o| o["uid"].as_str())
            .unwrap_or("")
            .to_string();
        let mine: HashMap<String, usize> = per_owner
            .iter()
            .filter(|((o, _), _)| *o == owner)
            .map(|((_, n), c)| (n.clone(), *c))
            .collect();
        let (ns, pname) = (namespace(p), name(p));
        match pick_node(&p["spec"], nodes, &mine, &per_node) {
            Some(n) => {
                let t = now();
                let r = shared.store.update_with(PODS, Some(ns), pname, None, |o| {
                    if pods::node_name(o).is_some() {
                        return Ok(());
                    }
                    o["spec"]["nodeName"] = json!(n.name);
                    o["status"] = scheduled_status(o, n, &t);
                    Ok(())
                });
                if let Some(bound) = warn_err("bind pod", r) {
                    wrote = true;
                    recorder::record(
                        shared,
                        &recorder::ObjectRef::of(&bound),
                        recorder::SCHEDULER,
                        "Normal",
                        "Scheduled",
                        &format!("Successfully assigned {ns}/{pname} to {}", n.name),
                    );
                    *per_node.entry(n.name.clone()).or_default() += 1;
                    *per_owner.entry((owner, n.name.clone())).or_default() += 1;
                }
            }
            None => {
                let already = p["status"]["conditions"].as_array().is_some_and(|c| {
                    c.iter()
                        .any(|c| c["type"] == "PodScheduled" && c["reason"] == "Unschedulable")
                });
                if already {
                    continue;
                }
                let msg = failed_scheduling_message(&p["spec"], nodes);
                let t = now();
                let r = shared.store.update_with(PODS, Some(ns), pname, None, |o| {
                    let mut c = condition("PodScheduled", "False", &t);
                    c["reason"] = json!("Unschedulable");
                    c["message"] = json!(msg);
                    o["status"] = json!({"phase": "Pending", "conditions": [c], "qosClass": "BestEffort"});
                    Ok(())
                });
                if let Some(p) = warn_err("mark pod unschedulable", r) {
                    wrote = true;
                    recorder::record(
                        shared,
                        &recorder::ObjectRef::of(&p),
                        recorder::SCHEDULER,
                        "Warning",
                        "FailedScheduling",
                        &msg,
                    );
                }
            }
        }
    }
    wrote
}

/// Start scheduled pods after `podStartSeconds`, follow node readiness and reboots.
fn kubelet(shared: &Arc<Shared>, nodes: &[NodeInfo], st: &mut State, all: &[Value]) -> bool {
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
            if let Some(run) = workloads::job_run_time(p) {
                let since = *st.job_running.entry(u.clone()).or_insert_with(Instant::now);
                if since.elapsed() >= run {
                    let t = now();
                    let r = shared.store.update_with(PODS, Some(ns), pname, None, |o| {
                        if !active(o) {
                            return Ok(());
                        }
                        o["status"] = workloads::succeeded_status(o, &t);
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

fn set_status(shared: &Shared, res: store::Resource, obj: &Value, status: Value) {
    if obj["status"] == status {
        return;
    }
    let r = shared
        .store
        .update_with(res, Some(namespace(obj)), name(obj), None, |o| {
            o["status"] = status;
            Ok(())
        });
    warn_err("status", r);
}

/// Keep a condition's transition time while its status stays the same.
fn keep_times(old: &Value, mut c: Value) -> Value {
    if let Some(prev) = old["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|p| p["type"] == c["type"]))
    {
        if prev["status"] == c["status"] && prev["reason"] == c["reason"] {
            for k in ["lastTransitionTime", "lastUpdateTime"] {
                if prev.get(k).is_some() {
                    c[k] = prev[k].clone();
                }
            }
        }
    }
    c
}

/// ReplicaSet, Deployment and DaemonSet status.
fn workload_status(shared: &Shared, nodes: &[NodeInfo], owners: &HashMap<&str, Vec<&Value>>) {
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
        let rev = workloads::revision(&ds);
        let updated = act
            .iter()
            .filter(|p| p["metadata"]["labels"][workloads::REVISION_LABEL] == rev.as_str())
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
fn scaled(v: &Value, total: i64) -> Option<i64> {
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
fn expected_scale(shared: &Shared, pods_: &[&Value]) -> i64 {
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

/// PodDisruptionBudget status, as the disruption controller computes it. `budgets` were
/// read before `all`, and the update is conditional on the budget's resourceVersion, so
/// an eviction that spends the budget after the pods were read is never overwritten
/// with a stale allowance (the update conflicts and the next round recomputes).
fn pdb_status(shared: &Shared, budgets: Vec<Value>, all: &[Value]) {
    let now_t = Timestamp::now();
    for pdb in budgets {
        let ns = namespace(&pdb).to_string();
        let pname = name(&pdb).to_string();
        let rv = pdb["metadata"]["resourceVersion"].as_str().unwrap_or("").to_string();
        // A null selector selects nothing (policy/v1).
        let sel = match &pdb["spec"]["selector"] {
            Value::Null => None,
            s => selector::LabelSelector::from_object(s).ok(),
        };
        let matching: Vec<&Value> = all
            .iter()
            .filter(|p| namespace(p) == ns)
            .filter(|p| sel.as_ref().is_some_and(|s| s.matches(&p["metadata"]["labels"])))
            .collect();
        let spec = &pdb["spec"];
        let (expected, desired) = if !spec["maxUnavailable"].is_null() {
            let e = expected_scale(shared, &matching);
            let mu = scaled(&spec["maxUnavailable"], e).unwrap_or(0);
            (e, (e - mu).max(0))
        } else if let Some(m) = spec["minAvailable"].as_i64() {
            (matching.len() as i64, m)
        } else if !spec["minAvailable"].is_null() {
            let e = expected_scale(shared, &matching);
            (e, scaled(&spec["minAvailable"], e).unwrap_or(0))
        } else {
            (matching.len() as i64, 0)
        };
        let mut disrupted = serde_json::Map::new();
        if let Some(d) = pdb["status"]["disruptedPods"].as_object() {
            for p in &matching {
                if pods::is_terminating(p) {
                    continue;
                }
                if let Some(at) = d.get(name(p)) {
                    let fresh = at
                        .as_str()
                        .and_then(crate::time::parse)
                        .is_some_and(|t| now_t.duration_since(t).as_secs() < DISRUPTED_POD_TIMEOUT);
                    if fresh {
                        disrupted.insert(name(p).to_string(), at.clone());
                    }
                }
            }
        }
        let healthy = matching
            .iter()
            .filter(|p| !pods::is_terminating(p) && pods::is_ready(p) && !disrupted.contains_key(name(p)))
            .count() as i64;
        let mut allowed = healthy - desired;
        if expected <= 0 || allowed <= 0 || shared.faults.pdb_never_allows(&ns, &pname) {
            allowed = 0;
        }
        let generation = pdb["metadata"]["generation"].as_i64().unwrap_or(1);
        let t = now();
        let cond = keep_times(
            &pdb["status"],
            json!({"type": "DisruptionAllowed", "status": if allowed > 0 {"True"} else {"False"},
                   "reason": if allowed > 0 {"SufficientPods"} else {"InsufficientPods"}, "message": "",
                   "observedGeneration": generation, "lastTransitionTime": t}),
        );
        let mut status = json!({
            "observedGeneration": generation,
            "disruptionsAllowed": allowed,
            "currentHealthy": healthy,
            "desiredHealthy": desired,
            "expectedPods": expected,
            "conditions": [cond],
        });
        if !disrupted.is_empty() {
            status["disruptedPods"] = Value::Object(disrupted);
        }
        if pdb["status"] == status {
            continue;
        }
        let r = shared.store.update_with(PDBS, Some(&ns), &pname, Some(&rv), |o| {
            o["status"] = status;
            Ok(())
        });
        warn_err("pdb status", r);
    }
}

/// Record changes of kured's lock annotation in the event log.
fn kured_lock(shared: &Shared, st: &mut State) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn node(labels: Value, ready: bool, unschedulable: bool, taints: Vec<Value>) -> NodeInfo {
        NodeInfo {
            name: "n".into(),
            labels,
            ready,
            unschedulable,
            taints,
            ip: "127.77.0.1".into(),
            boot_id: "b".into(),
            uid: "u".into(),
            cidr: "10.244.1".into(),
        }
    }

    #[test]
    fn scheduling_rules() {
        let linux = json!({"kubernetes.io/os": "linux", "agentpool": "user"});
        let spec = json!({"nodeSelector": {"agentpool": "user"}, "tolerations": default_tolerations()});
        assert!(fits(&spec, &node(linux.clone(), true, false, vec![])));
        assert!(!fits(&spec, &node(linux.clone(), false, false, vec![])));
        assert!(!fits(&spec, &node(linux.clone(), true, true, vec![])));
        assert!(!fits(
            &spec,
            &node(
                json!({"kubernetes.io/os": "windows", "agentpool": "user"}),
                true,
                false,
                vec![]
            )
        ));
        assert!(!fits(
            &spec,
            &node(
                json!({"kubernetes.io/os": "linux", "agentpool": "system"}),
                true,
                false,
                vec![]
            )
        ));
        let tainted = vec![json!({"key": "dedicated", "value": "gpu", "effect": "NoSchedule"})];
        assert!(!fits(&spec, &node(linux.clone(), true, false, tainted.clone())));
        let ds = json!({"tolerations": daemonset_tolerations()});
        assert!(fits(&ds, &node(linux.clone(), true, true, tainted)));
        let pref = vec![json!({"key": "x", "effect": "PreferNoSchedule"})];
        assert!(fits(&spec, &node(linux, true, false, pref)));
    }

    #[test]
    fn required_node_affinity_is_scheduled_by() {
        let user = json!({"kubernetes.io/os": "linux", "agentpool": "user", "cores": "8"});
        let with = |terms: Value| json!({"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}}});
        let n = node(user.clone(), true, false, vec![]);
        assert!(fits(
            &with(json!([{"matchExpressions": [{"key": "agentpool", "operator": "In", "values": ["user"]}]}])),
            &n
        ));
        assert!(!fits(
            &with(json!([{"matchExpressions": [{"key": "agentpool", "operator": "In", "values": ["gpu"]}]}])),
            &n
        ));
        assert!(fits(
            &with(json!([{"matchExpressions": [{"key": "agentpool", "operator": "NotIn", "values": ["system"]}]}])),
            &n
        ));
        assert!(fits(
            &with(json!([{"matchExpressions": [{"key": "gpu", "operator": "DoesNotExist"}]}])),
            &n
        ));
        assert!(!fits(
            &with(json!([{"matchExpressions": [{"key": "gpu", "operator": "Exists"}]}])),
            &n
        ));
        assert!(fits(
            &with(json!([{"matchExpressions": [{"key": "cores", "operator": "Gt", "values": ["4"]}]}])),
            &n
        ));
        // Terms are ORed, expressions within one ANDed; an empty term or list matches nothing.
        assert!(fits(
            &with(json!([
                {"matchExpressions": [{"key": "agentpool", "operator": "In", "values": ["gpu"]}]},
                {"matchExpressions": [{"key": "agentpool", "operator": "Exists"}, {"key": "cores", "operator": "Lt", "values": ["16"]}]}
            ])),
            &n
        ));
        assert!(!fits(&with(json!([{}])), &n));
        assert!(!fits(&with(json!([])), &n));
        assert!(fits(
            &with(json!([{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n"]}]}])),
            &n
        ));
        assert!(!fits(
            &with(json!([{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["m"]}]}])),
            &n
        ));
    }

    #[test]
    fn failed_scheduling_says_what_each_node_failed_on_as_kube_scheduler_does() {
        let spec = json!({"nodeSelector": {"agentpool": "user"}, "tolerations": default_tolerations()});
        let nodes = [
            node(
                json!({"kubernetes.io/os": "linux", "agentpool": "user"}),
                true,
                true,
                vec![],
            ),
            node(
                json!({"kubernetes.io/os": "linux", "agentpool": "system"}),
                true,
                false,
                vec![],
            ),
            node(
                json!({"kubernetes.io/os": "linux", "agentpool": "system"}),
                true,
                false,
                vec![],
            ),
            node(
                json!({"kubernetes.io/os": "linux", "agentpool": "user"}),
                false,
                false,
                vec![],
            ),
        ];
        assert_eq!(
            failed_scheduling_message(&spec, &nodes),
            "0/4 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }, 1 node(s) were unschedulable, 2 node(s) didn't match Pod's node affinity/selector. preemption: 0/4 nodes are available: 4 Preemption is not helpful for scheduling."
        );
    }

    #[test]
    fn toleration_matching() {
        let taint = json!({"key": "k", "value": "v", "effect": "NoSchedule"});
        assert!(tolerates(&[json!({"operator": "Exists"})], &taint));
        assert!(tolerates(
            &[json!({"key": "k", "operator": "Equal", "value": "v"})],
            &taint
        ));
        assert!(!tolerates(
            &[json!({"key": "k", "operator": "Equal", "value": "w"})],
            &taint
        ));
        assert!(tolerates(
            &[json!({"key": "k", "operator": "Exists", "effect": "NoSchedule"})],
            &taint
        ));
        assert!(!tolerates(
            &[json!({"key": "k", "operator": "Exists", "effect": "NoExecute"})],
            &taint
        ));
    }

    #[test]
    fn percentages_round_up() {
        assert_eq!(scaled(&json!("25%"), 3), Some(1));
        assert_eq!(scaled(&json!("50%"), 3), Some(2));
        assert_eq!(scaled(&json!(2), 3), Some(2));
        assert_eq!(scaled(&Value::Null, 3), None);
    }
}
