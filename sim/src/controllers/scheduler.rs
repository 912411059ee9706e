//! The scheduler: which nodes a pod fits (cordons, taints and tolerations, node selectors,
//! required node affinity), and binding pending pods to one, with kube-scheduler's
//! `FailedScheduling` message when none fits.

use super::*;

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

/// Can the scheduler put a pod with this spec on the node?
pub(super) fn fits(spec: &Value, node: &NodeInfo) -> bool {
    misfit(spec, node).is_none()
}

/// kube-scheduler's FailedScheduling message for a pod no node fits: how many nodes fail on
/// what, sorted, then the preemption verdict.
pub(super) fn failed_scheduling_message(spec: &Value, nodes: &[NodeInfo]) -> String {
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

/// The node for a new pod: fits, then fewest pods of the same owner, then fewest pods.
pub(super) fn pick_node<'a>(
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

/// Bind pending pods to nodes.
pub(super) fn schedule(shared: &Shared, nodes: &[NodeInfo], all: &[Value]) -> bool {
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
}
