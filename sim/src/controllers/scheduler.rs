//! The scheduler: which nodes a pod fits (cordons, taints and tolerations, node selectors,
//! required node affinity, room for its CPU and memory requests and one more pod), which of
//! those it prefers (no `PreferNoSchedule` taint it does not tolerate, then spreading), and
//! binding pending pods to one, with kube-scheduler's `FailedScheduling` message when none fits.

use super::*;
use crate::resources::Resources;

#[derive(Debug, Clone)]
pub(super) struct NodeInfo {
    pub(super) name: String,
    pub(super) labels: Value,
    pub(super) ready: bool,
    pub(super) unschedulable: bool,
    pub(super) taints: Vec<Value>,
    pub(super) ip: String,
    pub(super) boot_id: String,
    pub(super) uid: String,
    /// The node's pod CIDR without its last octet (`10.244.7` of 10.244.7.0/24).
    pub(super) cidr: String,
    /// `status.allocatable`: CPU and memory, and how many pods.
    pub(super) allocatable: Resources,
    pub(super) max_pods: usize,
}

/// What already holds a place on each node, as kube-scheduler's cache counts it: every pod
/// bound to the node that has not reached Succeeded or Failed (a terminating pod keeps its
/// place until it is gone), with its requests; and, for spreading, the pods not terminating,
/// by owner.
#[derive(Debug, Default)]
pub(super) struct Load {
    pods: HashMap<String, usize>,
    requested: HashMap<String, Resources>,
    spread: HashMap<String, usize>,
    by_owner: HashMap<(String, String), usize>,
}

impl Load {
    pub(super) fn of(all: &[Value]) -> Load {
        let mut load = Load::default();
        for p in all {
            if let Some(n) = pods::node_name(p) {
                if active(p) {
                    load.add(p, n);
                } else {
                    load.reserve(p, n);
                }
            }
        }
        load
    }

    /// The pod now runs on `node`: it holds a place there and counts for spreading.
    pub(super) fn add(&mut self, pod: &Value, node: &str) {
        self.reserve(pod, node);
        if matches!(pods::phase(pod), "Succeeded" | "Failed") {
            return;
        }
        *self.spread.entry(node.to_string()).or_default() += 1;
        *self
            .by_owner
            .entry((owner_uid(pod).to_string(), node.to_string()))
            .or_default() += 1;
    }

    /// The pod holds a place on `node` (unless it has finished), but does not count for
    /// spreading: a terminating pod, or one the cluster was seeded with beside the workloads
    /// that spread (DaemonSet, static and bare pods).
    pub(super) fn reserve(&mut self, pod: &Value, node: &str) {
        if matches!(pods::phase(pod), "Succeeded" | "Failed") {
            return;
        }
        *self.pods.entry(node.to_string()).or_default() += 1;
        let r = self.requested.entry(node.to_string()).or_default();
        *r = *r + Resources::of_pod(&pod["spec"]);
    }

    fn pods_on(&self, node: &str) -> usize {
        self.pods.get(node).copied().unwrap_or(0)
    }

    fn spread_on(&self, node: &str) -> usize {
        self.spread.get(node).copied().unwrap_or(0)
    }

    fn requested_on(&self, node: &str) -> Resources {
        self.requested.get(node).copied().unwrap_or_default()
    }

    fn of_owner_on(&self, owner: &str, node: &str) -> usize {
        self.by_owner
            .get(&(owner.to_string(), node.to_string()))
            .copied()
            .unwrap_or(0)
    }
}

fn owner_uid(pod: &Value) -> &str {
    pods::controller_ref(pod).and_then(|o| o["uid"].as_str()).unwrap_or("")
}

pub(super) fn node_infos(shared: &Shared) -> Vec<NodeInfo> {
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
                allocatable: Resources::from_map(&n["status"]["allocatable"]),
                max_pods: n["status"]["allocatable"]["pods"]
                    .as_str()
                    .and_then(|p| p.parse().ok())
                    .unwrap_or(110),
                name: name.clone(),
            };
            (order.get(name.as_str()).copied().unwrap_or(usize::MAX), info)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.name.cmp(&b.1.name)));
    out.into_iter().map(|(_, n)| n).collect()
}

pub(super) fn tolerates(tolerations: &[Value], taint: &Value) -> bool {
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

pub(super) fn selector_fits(node_selector: &Value, labels: &Value) -> bool {
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
pub(super) fn requirement_fits(r: &Value, labels: &Value) -> bool {
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
pub(super) fn affinity_fits(spec: &Value, node: &NodeInfo) -> bool {
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
pub(super) fn misfit(spec: &Value, node: &NodeInfo) -> Option<String> {
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

/// kube-scheduler's NodeResourcesFit filter: why the node has no room for the pod (`Too many
/// pods`, `Insufficient cpu`, `Insufficient memory`, each that applies), counting what the
/// node's pods request against its allocatable. A request of zero always fits.
pub(super) fn resource_misfits(spec: &Value, node: &NodeInfo, load: &Load) -> Vec<String> {
    let mut why = vec![];
    if load.pods_on(&node.name) + 1 > node.max_pods {
        why.push("Too many pods".to_string());
    }
    let want = Resources::of_pod(spec);
    let used = load.requested_on(&node.name);
    if want.cpu_millis > 0 && want.cpu_millis > node.allocatable.cpu_millis - used.cpu_millis {
        why.push("Insufficient cpu".to_string());
    }
    if want.memory_bytes > 0 && want.memory_bytes > node.allocatable.memory_bytes - used.memory_bytes {
        why.push("Insufficient memory".to_string());
    }
    why
}

/// Every reason the node is not for the pod, as the filters report it: the first of the
/// filters before NodeResourcesFit that fails, else what NodeResourcesFit finds (empty: it
/// fits).
pub(super) fn misfits(spec: &Value, node: &NodeInfo, load: &Load) -> Vec<String> {
    match misfit(spec, node) {
        Some(why) => vec![why],
        None => resource_misfits(spec, node, load),
    }
}

/// kube-scheduler's FailedScheduling message for a pod no node fits: how many nodes fail on
/// what, sorted, then the preemption verdict (a node that only lacks room might be freed by
/// preemption, but every pod here has the same priority, so there are no victims).
pub(super) fn failed_scheduling_message(spec: &Value, nodes: &[NodeInfo], load: &Load) -> String {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let (mut hopeless, mut no_victims) = (0, 0);
    for n in nodes {
        match misfit(spec, n) {
            Some(why) => {
                *counts.entry(why).or_default() += 1;
                hopeless += 1;
            }
            None => {
                let why = resource_misfits(spec, n, load);
                if !why.is_empty() {
                    no_victims += 1;
                }
                for w in why {
                    *counts.entry(w).or_default() += 1;
                }
            }
        }
    }
    let sorted = |counts: Vec<String>| {
        let mut v = counts;
        v.sort();
        v.join(", ")
    };
    let reasons = sorted(counts.iter().map(|(why, k)| format!("{k} {why}")).collect());
    let mut preemption = vec![];
    if hopeless > 0 {
        preemption.push(format!("{hopeless} Preemption is not helpful for scheduling"));
    }
    if no_victims > 0 {
        preemption.push(format!("{no_victims} No preemption victims found for incoming pod"));
    }
    let n = nodes.len();
    format!(
        "0/{n} nodes are available: {reasons}. preemption: 0/{n} nodes are available: {}.",
        sorted(preemption)
    )
}

/// How many of the node's `PreferNoSchedule` taints the pod does not tolerate (what
/// TaintToleration's score counts: fewer is better).
fn untolerated_preferences(spec: &Value, node: &NodeInfo) -> usize {
    let tolerations = spec["tolerations"].as_array().cloned().unwrap_or_default();
    node.taints
        .iter()
        .filter(|t| t["effect"] == "PreferNoSchedule" && !tolerates(&tolerations, t))
        .count()
}

/// How full the node would be with the pod, in ten-thousandths, CPU and memory averaged (what
/// LeastAllocated scores: emptier is better).
fn allocated_share(spec: &Value, node: &NodeInfo, load: &Load) -> i64 {
    let after = load.requested_on(&node.name) + Resources::of_pod(spec);
    let share = |used: i64, of: i64| {
        if of <= 0 {
            10_000
        } else {
            (i128::from(used) * 10_000 / i128::from(of)) as i64
        }
    };
    (share(after.cpu_millis, node.allocatable.cpu_millis) + share(after.memory_bytes, node.allocatable.memory_bytes))
        / 2
}

/// The node for a new pod among those it fits: fewest `PreferNoSchedule` taints it does not
/// tolerate, then fewest pods of the same owner, then least requested, then fewest pods.
pub(super) fn pick_node<'a>(pod: &Value, nodes: &'a [NodeInfo], load: &Load) -> Option<&'a NodeInfo> {
    let spec = &pod["spec"];
    let owner = owner_uid(pod);
    nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| misfits(spec, n, load).is_empty())
        .min_by_key(|(i, n)| {
            (
                untolerated_preferences(spec, n),
                load.of_owner_on(owner, &n.name),
                allocated_share(spec, n, load),
                load.spread_on(&n.name),
                *i,
            )
        })
        .map(|(_, n)| n)
}

/// Bind pending pods to nodes.
pub(super) fn schedule(shared: &Shared, nodes: &[NodeInfo], all: &[Value]) -> bool {
    let mut wrote = false;
    let mut load = Load::of(all);
    for p in all.iter().filter(|p| active(p) && pods::node_name(p).is_none()) {
        let (ns, pname) = (namespace(p), name(p));
        match pick_node(p, nodes, &load) {
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
                    if let Some(on) = pods::node_name(&bound) {
                        load.add(&bound, on);
                    }
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
                let msg = failed_scheduling_message(&p["spec"], nodes, &load);
                let t = now();
                let r = shared.store.update_with(PODS, Some(ns), pname, None, |o| {
                    let mut c = condition("PodScheduled", "False", &t);
                    c["reason"] = json!("Unschedulable");
                    c["message"] = json!(msg);
                    let qos = pods::qos_class(&o["spec"]);
                    o["status"] = json!({"phase": "Pending", "conditions": [c], "qosClass": qos});
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
            allocatable: Resources {
                cpu_millis: 3860,
                memory_bytes: 14034 << 20,
            },
            max_pods: 110,
        }
    }

    /// Can the scheduler put a pod with this spec on an empty node?
    fn fits(spec: &Value, node: &NodeInfo) -> bool {
        misfits(spec, node, &Load::default()).is_empty()
    }

    fn named(name: &str, mut n: NodeInfo) -> NodeInfo {
        n.name = name.into();
        n
    }

    fn requesting(cpu: &str, memory: &str) -> Value {
        json!({
            "containers": [{"name": "app", "resources": {"requests": {"cpu": cpu, "memory": memory}}}],
            "tolerations": default_tolerations(),
        })
    }

    fn bound_pod(spec: &Value, node: &str) -> Value {
        let mut p = json!({"metadata": {"name": "p"}, "spec": spec, "status": {"phase": "Running"}});
        p["spec"]["nodeName"] = json!(node);
        p
    }

    #[test]
    fn a_pod_fits_only_where_its_requests_leave_room() {
        let linux = json!({"kubernetes.io/os": "linux"});
        let nodes = [
            named("a", node(linux.clone(), true, false, vec![])),
            named("b", node(linux.clone(), true, false, vec![])),
        ];
        let big = requesting("3", "1Gi");
        let mut load = Load::default();
        load.add(&bound_pod(&big, "a"), "a");
        let pod = json!({"metadata": {"name": "new"}, "spec": big});
        // 3 of a's 3.86 cores are taken: the pod goes to b.
        assert_eq!(pick_node(&pod, &nodes, &load).map(|n| n.name.as_str()), Some("b"));
        load.add(&bound_pod(&big, "b"), "b");
        assert!(pick_node(&pod, &nodes, &load).is_none());
        assert_eq!(
            failed_scheduling_message(&pod["spec"], &nodes, &load),
            "0/2 nodes are available: 2 Insufficient cpu. preemption: 0/2 nodes are available: 2 No preemption victims found for incoming pod."
        );
        // A finished pod holds no place; a request of nothing always fits.
        let mut done = bound_pod(&big, "a");
        done["status"]["phase"] = json!("Succeeded");
        let mut only_done = Load::default();
        only_done.add(&done, "a");
        assert!(misfits(&big, &nodes[0], &only_done).is_empty());
        assert!(misfits(&json!({"tolerations": default_tolerations()}), &nodes[0], &load).is_empty());
    }

    #[test]
    fn failed_scheduling_counts_every_resource_a_node_lacks_beside_the_other_reasons() {
        let linux = json!({"kubernetes.io/os": "linux"});
        let nodes = [
            named("a", node(linux.clone(), true, false, vec![])),
            named("b", node(linux.clone(), true, true, vec![])),
            named("c", node(linux.clone(), true, false, vec![])),
        ];
        let huge = requesting("64", "1Ti");
        let mut load = Load::default();
        for _ in 0..110 {
            load.add(&bound_pod(&json!({}), "c"), "c");
        }
        assert_eq!(
            failed_scheduling_message(&huge, &nodes, &load),
            "0/3 nodes are available: 1 Too many pods, 1 node(s) were unschedulable, 2 Insufficient cpu, 2 Insufficient memory. preemption: 0/3 nodes are available: 1 Preemption is not helpful for scheduling, 2 No preemption victims found for incoming pod."
        );
    }

    #[test]
    fn a_pod_prefers_nodes_without_a_prefer_no_schedule_taint_it_does_not_tolerate() {
        let linux = json!({"kubernetes.io/os": "linux"});
        let pending = vec![json!({"key": "aks-patch.io/pending", "effect": "PreferNoSchedule"})];
        let nodes = [
            named("a", node(linux.clone(), true, false, pending.clone())),
            named("b", node(linux.clone(), true, false, vec![])),
        ];
        let spec = requesting("1", "1Gi");
        let mut load = Load::default();
        // b is busier, yet a's taint weighs more.
        load.add(&bound_pod(&spec, "b"), "b");
        let pod = json!({"metadata": {"name": "new"}, "spec": spec.clone()});
        assert_eq!(pick_node(&pod, &nodes, &load).map(|n| n.name.as_str()), Some("b"));
        // When b has no room, the tainted node still takes the pod.
        load.add(&bound_pod(&requesting("2", "1Gi"), "b"), "b");
        assert_eq!(pick_node(&pod, &nodes, &load).map(|n| n.name.as_str()), Some("a"));
        // A pod that tolerates the taint does not mind it: it goes to the emptier node.
        let mut tolerant = pod.clone();
        tolerant["spec"]["tolerations"] = json!([{"key": "aks-patch.io/pending", "operator": "Exists"}]);
        assert_eq!(
            pick_node(&tolerant, &nodes, &Load::default()).map(|n| n.name.as_str()),
            Some("a")
        );
    }

    #[test]
    fn a_pod_goes_to_the_least_requested_node() {
        let linux = json!({"kubernetes.io/os": "linux"});
        let nodes = [
            named("a", node(linux.clone(), true, false, vec![])),
            named("b", node(linux.clone(), true, false, vec![])),
        ];
        let mut load = Load::default();
        load.add(&bound_pod(&requesting("2", "1Gi"), "a"), "a");
        load.add(&bound_pod(&requesting("100m", "64Mi"), "b"), "b");
        load.add(&bound_pod(&requesting("100m", "64Mi"), "b"), "b");
        let pod = json!({
            "metadata": {"name": "new", "ownerReferences": [{"kind": "ReplicaSet", "uid": "rs", "controller": true}]},
            "spec": requesting("500m", "256Mi"),
        });
        assert_eq!(pick_node(&pod, &nodes, &load).map(|n| n.name.as_str()), Some("b"));
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
            failed_scheduling_message(&spec, &nodes, &Load::default()),
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
}
