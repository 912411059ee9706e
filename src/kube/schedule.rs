//! Where an evicted pod could go: kube-scheduler's filters that depend on the pod and the node
//! alone, over typed values. A pod fits a node when the node is Ready, schedulable (not
//! cordoned, or the pod tolerates `node.kubernetes.io/unschedulable:NoSchedule`, as the
//! NodeUnschedulable plugin says), carries every label of the pod's `nodeSelector`, matches
//! one term of its required node affinity (NodeAffinity: terms ORed, expressions within a
//! term ANDed; `In`, `NotIn`, `Exists`, `DoesNotExist`, `Gt`, `Lt`; `matchFields` on
//! `metadata.name`), has no `NoSchedule`/`NoExecute` taint the pod does not tolerate
//! (TaintToleration; `PreferNoSchedule` is a preference, not a filter), and, where the pods
//! bound to the nodes are known, has room for its requests (NodeResourcesFit: CPU, memory,
//! pod slots; [`room`]). [`place`] puts pods one by one, as the scheduler would, subtracting
//! their requests. Pod (anti-)affinity and topology spread are not judged.

pub mod place;
pub mod quantity;
pub mod room;

use super::nodes::Readiness;
use super::objects::PodRef;
use super::snapshot::ClusterSnapshot;
use k8s_openapi::api::core::v1::{Node, NodeSelectorRequirement, NodeSelectorTerm, Pod, PodSpec, Taint, Toleration};
use room::{Resources, Shortage};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;

/// The taint the node lifecycle controller puts on a cordoned node.
pub const UNSCHEDULABLE_TAINT: &str = "node.kubernetes.io/unschedulable";

/// Whether `t` tolerates `taint`, as `v1.Toleration.ToleratesTaint` decides: an empty effect
/// matches every effect, an empty key (with `Exists`) every key, an empty operator is `Equal`.
pub fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    if let Some(effect) = t.effect.as_deref().filter(|e| !e.is_empty()) {
        if effect != taint.effect {
            return false;
        }
    }
    if let Some(key) = t.key.as_deref().filter(|k| !k.is_empty()) {
        if key != taint.key {
            return false;
        }
    }
    match t.operator.as_deref().unwrap_or("") {
        "" | "Equal" => t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or(""),
        "Exists" => true,
        _ => false,
    }
}

/// The first `NoSchedule` or `NoExecute` taint that none of `tolerations` tolerates.
pub fn untolerated_taint<'a>(tolerations: &[Toleration], taints: &'a [Taint]) -> Option<&'a Taint> {
    taints
        .iter()
        .filter(|t| t.effect == "NoSchedule" || t.effect == "NoExecute")
        .find(|taint| !tolerations.iter().any(|t| tolerates(t, taint)))
}

/// `nodeSelector`: every pair is a label of the node.
pub fn matches_node_selector(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// One `matchExpressions` requirement against the node's labels. A requirement the API
/// server would reject (`In` without values, `Exists` with values, `Gt` with a non-integer)
/// matches nothing, as the scheduler's lazy-error selector has it.
pub fn requirement_matches(req: &NodeSelectorRequirement, labels: &BTreeMap<String, String>) -> bool {
    let values = req.values.as_deref().unwrap_or_default();
    let label = labels.get(&req.key);
    match req.operator.as_str() {
        "In" => !values.is_empty() && label.is_some_and(|l| values.contains(l)),
        "NotIn" => !values.is_empty() && label.is_none_or(|l| !values.contains(l)),
        "Exists" => values.is_empty() && label.is_some(),
        "DoesNotExist" => values.is_empty() && label.is_none(),
        op @ ("Gt" | "Lt") => {
            let [bound] = values else { return false };
            let (Ok(bound), Some(Ok(value))) = (bound.parse::<i64>(), label.map(|l| l.parse::<i64>())) else {
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

/// One `matchFields` requirement: only `metadata.name`, `In` or `NotIn` with one value.
fn field_matches(req: &NodeSelectorRequirement, node_name: &str) -> bool {
    let values = req.values.as_deref().unwrap_or_default();
    if req.key != "metadata.name" || values.len() != 1 {
        return false;
    }
    match req.operator.as_str() {
        "In" => values[0] == node_name,
        "NotIn" => values[0] != node_name,
        _ => false,
    }
}

/// A node selector term: all its requirements hold; an empty term matches nothing.
pub fn term_matches(term: &NodeSelectorTerm, node_name: &str, labels: &BTreeMap<String, String>) -> bool {
    let exprs = term.match_expressions.as_deref().unwrap_or_default();
    let fields = term.match_fields.as_deref().unwrap_or_default();
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    exprs.iter().all(|r| requirement_matches(r, labels)) && fields.iter().all(|r| field_matches(r, node_name))
}

/// The pod's required node affinity (`requiredDuringSchedulingIgnoredDuringExecution`), if any.
fn required_terms(spec: &PodSpec) -> Option<&[NodeSelectorTerm]> {
    spec.affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()
        .map(|s| s.node_selector_terms.as_slice())
}

/// The required node affinity holds on the node: one of its terms matches (no term: none).
/// A pod without one matches every node.
pub fn matches_required_affinity(spec: &PodSpec, node_name: &str, labels: &BTreeMap<String, String>) -> bool {
    match required_terms(spec) {
        None => true,
        Some(terms) => terms.iter().any(|t| term_matches(t, node_name, labels)),
    }
}

/// The taints the node lifecycle controller puts on a node that is not Ready.
const NOT_READY_TAINTS: [&str; 2] = ["node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"];

/// The node's taints but the cordon's own (judged with the cordon, see
/// [`schedulable_and_ready`]), and, for a node `coming_back`, those of its being down.
fn taints(node: &Node, coming_back: bool) -> Vec<Taint> {
    let all = node.spec.as_ref().and_then(|s| s.taints.as_deref()).unwrap_or_default();
    all.iter()
        .filter(|t| t.key != UNSCHEDULABLE_TAINT && !(coming_back && NOT_READY_TAINTS.contains(&t.key.as_str())))
        .cloned()
        .collect()
}

fn cordoned(node: &Node) -> bool {
    node.spec.as_ref().and_then(|s| s.unschedulable).unwrap_or(false)
}

fn tolerations(spec: &PodSpec) -> &[Toleration] {
    spec.tolerations.as_deref().unwrap_or_default()
}

/// The node takes new pods that tolerate what a cordon says: Ready and not cordoned (or the
/// pod tolerates the unschedulable taint). `coming_back`: the node is out of service now (a
/// run's, cordoned, maybe rebooting) but will be back, Ready and uncordoned, before the pod
/// needs it.
fn schedulable_and_ready(spec: &PodSpec, node: &Node, coming_back: bool) -> bool {
    let unschedulable = Taint {
        key: UNSCHEDULABLE_TAINT.into(),
        effect: "NoSchedule".into(),
        ..Default::default()
    };
    coming_back
        || (Readiness::of(node).is_ready()
            && (!cordoned(node) || tolerations(spec).iter().any(|t| tolerates(t, &unschedulable))))
}

fn taint_text(t: &Taint) -> String {
    match t.value.as_deref().filter(|v| !v.is_empty()) {
        Some(v) => format!("{}={v}:{}", t.key, t.effect),
        None => format!("{}:{}", t.key, t.effect),
    }
}

fn requirement_text(r: &NodeSelectorRequirement) -> String {
    let values = r.values.as_deref().unwrap_or_default().join(", ");
    match r.operator.as_str() {
        "In" => format!("{} in ({values})", r.key),
        "NotIn" => format!("{} notin ({values})", r.key),
        "Exists" => r.key.clone(),
        "DoesNotExist" => format!("!{}", r.key),
        "Gt" => format!("{} > {values}", r.key),
        "Lt" => format!("{} < {values}", r.key),
        other => format!("{} {other} ({values})", r.key),
    }
}

fn affinity_text(terms: &[NodeSelectorTerm]) -> String {
    let text: Vec<String> = terms
        .iter()
        .map(|t| {
            let parts: Vec<String> = t
                .match_expressions
                .iter()
                .chain(t.match_fields.iter())
                .flatten()
                .map(requirement_text)
                .collect();
            parts.join(", ")
        })
        .collect();
    if text.is_empty() {
        "(no term)".into()
    } else {
        text.join(" or ")
    }
}

/// What the other nodes fail on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Constraint {
    NodeSelector(BTreeMap<String, String>),
    /// The required node affinity, as a selector text.
    Affinity(String),
    /// The taints the pod does not tolerate, `node: key=value:Effect`.
    Taints(Vec<String>),
    /// Room for the pod's requests; how many nodes lack each resource.
    Room {
        requests: Resources,
        short: Vec<(Shortage, usize)>,
    },
}

impl fmt::Display for Constraint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Constraint::NodeSelector(s) => {
                let pairs: Vec<String> = s.iter().map(|(k, v)| format!("{k}={v}")).collect();
                write!(f, "matches nodeSelector {}", pairs.join(","))
            }
            Constraint::Affinity(a) => write!(f, "matches its required node affinity ({a})"),
            Constraint::Taints(t) => write!(f, "tolerates the taints ({})", t.join("; ")),
            Constraint::Room { requests, short } => {
                let parts: Vec<String> = short
                    .iter()
                    .map(|(s, n)| format!("{s} on {n} node{}", if *n == 1 { "" } else { "s" }))
                    .collect();
                write!(f, "has room for its requests of {requests} ({})", parts.join(", "))
            }
        }
    }
}

/// Why a pod evicted from a node would have nowhere to go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Nowhere {
    /// The cluster has no other node.
    NoOtherNode,
    /// No other node is both Ready and schedulable (`out`: Ready and uncordoned, but out of
    /// service all the same: another run's, or going out with this one).
    NoneSchedulableReady {
        cordoned: usize,
        not_ready: usize,
        out: usize,
    },
    /// Other nodes are schedulable and Ready, but none meets these (the last one ruled out
    /// the rest).
    NoneMatches(Vec<Constraint>),
}

impl fmt::Display for Nowhere {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Nowhere::NoOtherNode => write!(f, "the cluster has no other node"),
            Nowhere::NoneSchedulableReady {
                cordoned,
                not_ready,
                out: 0,
            } => write!(
                f,
                "no other node is schedulable and Ready ({cordoned} cordoned, {not_ready} not Ready)"
            ),
            Nowhere::NoneSchedulableReady { cordoned, not_ready, out } => write!(
                f,
                "no other node is schedulable and Ready ({out} out of service, {cordoned} cordoned, {not_ready} not Ready)"
            ),
            Nowhere::NoneMatches(c) => {
                let parts: Vec<String> = c.iter().map(|c| c.to_string()).collect();
                write!(f, "no other schedulable Ready node {}", parts.join(" and "))
            }
        }
    }
}

impl Serialize for Nowhere {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A pod the drain would evict whose replacement could go to no other node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stranded {
    pub pod: PodRef,
    pub why: Nowhere,
}

impl fmt::Display for Stranded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.pod, self.why)
    }
}

/// The evicted pod is replaced elsewhere by its controller: it has one and is not finished
/// (a bare pod is gone for good, a finished one needs no place).
pub fn replaced_elsewhere(pod: &Pod) -> bool {
    let controlled = pod
        .metadata
        .owner_references
        .as_ref()
        .is_some_and(|o| o.iter().any(|o| o.controller == Some(true)));
    let finished = matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded") | Some("Failed")
    );
    controlled && !finished
}

/// Where `pod`, evicted from node `from`, could go among `nodes`: `None` when some other node
/// fits it, else why none does. `coming_back`: nodes cordoned now that will be uncordoned
/// before the pod needs them. Room is not judged here (the nodes' pods are not known): see
/// [`stranded_in`].
pub fn nowhere_to_go(pod: &Pod, nodes: &[Node], from: &str, coming_back: &[String]) -> Option<Nowhere> {
    let others: Vec<Candidate> = nodes
        .iter()
        .filter(|n| n.metadata.name.as_deref() != Some(from))
        .map(|n| Candidate {
            node: n,
            coming_back: coming_back
                .iter()
                .any(|c| Some(c.as_str()) == n.metadata.name.as_deref()),
            out: false,
            room: None,
        })
        .collect();
    explain(pod, &others)
}

/// A node as a place for a pod, as [`explain`] judges it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Candidate<'a> {
    pub node: &'a Node,
    /// Out of service now, back (Ready, uncordoned) before the pod needs it.
    pub coming_back: bool,
    /// Takes no pod whatever it looks like: out of service, or going out with this batch.
    pub out: bool,
    /// Its room; `None`: not judged.
    pub room: Option<Resources>,
}

/// The static filters: everything but room and whether the node is out.
pub(crate) fn passes_filters(spec: &PodSpec, node: &Node, coming_back: bool) -> bool {
    let name = node.metadata.name.as_deref().unwrap_or("");
    let labels = label_map(node);
    schedulable_and_ready(spec, node, coming_back)
        && spec
            .node_selector
            .as_ref()
            .is_none_or(|sel| matches_node_selector(sel, labels))
        && matches_required_affinity(spec, name, labels)
        && untolerated_taint(tolerations(spec), &taints(node, coming_back)).is_none()
}

/// Whether the node carries a `PreferNoSchedule` taint the pod does not tolerate: the
/// scheduler puts it elsewhere when it can.
pub(crate) fn disfavoured(spec: &PodSpec, node: &Node) -> bool {
    let all = node.spec.as_ref().and_then(|s| s.taints.as_deref()).unwrap_or_default();
    all.iter()
        .filter(|t| t.effect == "PreferNoSchedule")
        .any(|taint| !tolerations(spec).iter().any(|t| tolerates(t, taint)))
}

/// Why none of `others` (every node but those the pod leaves) takes `pod`, filter by filter
/// in the scheduler's order, room last: `None` when one does.
pub(crate) fn explain(pod: &Pod, others: &[Candidate]) -> Option<Nowhere> {
    let empty = PodSpec::default();
    let spec = pod.spec.as_ref().unwrap_or(&empty);
    if others.is_empty() {
        return Some(Nowhere::NoOtherNode);
    }
    let name = |n: &Node| n.metadata.name.clone().unwrap_or_default();
    let mut left: Vec<&Candidate> = others
        .iter()
        .filter(|c| !c.out && schedulable_and_ready(spec, c.node, c.coming_back))
        .collect();
    if left.is_empty() {
        let cordoned = others.iter().filter(|c| cordoned(c.node)).count();
        let not_ready = others.iter().filter(|c| !Readiness::of(c.node).is_ready()).count();
        let out = others
            .iter()
            .filter(|c| c.out && !cordoned_or_not_ready(c.node))
            .count();
        return Some(Nowhere::NoneSchedulableReady {
            cordoned,
            not_ready,
            out,
        });
    }
    let mut applied = vec![];
    if let Some(sel) = spec.node_selector.as_ref().filter(|s| !s.is_empty()) {
        applied.push(Constraint::NodeSelector(sel.clone()));
        left.retain(|c| matches_node_selector(sel, label_map(c.node)));
        if left.is_empty() {
            return Some(Nowhere::NoneMatches(applied));
        }
    }
    if let Some(terms) = required_terms(spec) {
        applied.push(Constraint::Affinity(affinity_text(terms)));
        left.retain(|c| matches_required_affinity(spec, &name(c.node), label_map(c.node)));
        if left.is_empty() {
            return Some(Nowhere::NoneMatches(applied));
        }
    }
    let untolerated: Vec<String> = left
        .iter()
        .filter_map(|c| {
            untolerated_taint(tolerations(spec), &taints(c.node, c.coming_back))
                .map(|t| format!("{}: {}", name(c.node), taint_text(t)))
        })
        .collect();
    if untolerated.len() == left.len() {
        applied.push(Constraint::Taints(untolerated));
        return Some(Nowhere::NoneMatches(applied));
    }
    left.retain(|c| untolerated_taint(tolerations(spec), &taints(c.node, c.coming_back)).is_none());
    let requests = room::pod_requests(pod);
    let mut short: BTreeMap<Shortage, usize> = BTreeMap::new();
    for c in &left {
        let lacks = c.room.map(|r| r.shortages(requests)).unwrap_or_default();
        if lacks.is_empty() {
            return None;
        }
        for s in lacks {
            *short.entry(s).or_default() += 1;
        }
    }
    applied.push(Constraint::Room {
        requests,
        short: short.into_iter().collect(),
    });
    Some(Nowhere::NoneMatches(applied))
}

/// The node's labels, borrowed (none: empty).
fn label_map(node: &Node) -> &BTreeMap<String, String> {
    static EMPTY: BTreeMap<String, String> = BTreeMap::new();
    node.metadata.labels.as_ref().unwrap_or(&EMPTY)
}

fn cordoned_or_not_ready(node: &Node) -> bool {
    cordoned(node) || !Readiness::of(node).is_ready()
}

/// The pods of `evict` (what draining the nodes `from` evicts) whose replacements would have
/// nowhere to go in `snapshot`, room counted: the replaced ones are placed one by one,
/// largest first, each taking its requests from its node's room ([`place`]); those that get
/// no place are named, in `evict`'s order, with why. `coming_back`: nodes out of service now
/// that are back, Ready and uncordoned, before the pods need them.
pub fn stranded_in(
    snapshot: &ClusterSnapshot,
    evict: &[Pod],
    from: &[String],
    coming_back: &[String],
) -> Vec<Stranded> {
    let mut places = place::Places::new(&snapshot.nodes, &snapshot.pods, coming_back);
    for f in from {
        places.set_state(f, place::State::Leaving);
    }
    let mut order: Vec<&Pod> = evict.iter().filter(|p| replaced_elsewhere(p)).collect();
    place::largest_first(&mut order);
    let mut nowhere: Vec<(&Pod, Nowhere)> = vec![];
    for pod in order {
        if places.place(pod).is_none() {
            nowhere.push((pod, places.why_not(pod).unwrap_or(Nowhere::NoOtherNode)));
        }
    }
    evict
        .iter()
        .filter_map(|p| {
            let i = nowhere.iter().position(|(q, _)| std::ptr::eq(*q, p))?;
            Some(Stranded {
                pod: PodRef::of(p),
                why: nowhere[i].1.clone(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        Affinity, NodeAffinity, NodeCondition, NodeSelector, NodeSpec, NodeStatus, PodStatus,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

    fn node(name: &str, pool: &str) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some(
                    [
                        ("agentpool".to_string(), pool.to_string()),
                        ("kubernetes.io/os".into(), "linux".into()),
                    ]
                    .into(),
                ),
                ..Default::default()
            },
            spec: Some(NodeSpec::default()),
            status: Some(NodeStatus {
                conditions: Some(vec![NodeCondition {
                    type_: "Ready".into(),
                    status: "True".into(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        }
    }

    fn cordon(mut n: Node) -> Node {
        let spec = n.spec.get_or_insert_with(Default::default);
        spec.unschedulable = Some(true);
        spec.taints.get_or_insert_with(Vec::new).push(Taint {
            key: UNSCHEDULABLE_TAINT.into(),
            effect: "NoSchedule".into(),
            ..Default::default()
        });
        n
    }

    fn taint(mut n: Node, key: &str, value: Option<&str>, effect: &str) -> Node {
        n.spec
            .get_or_insert_with(Default::default)
            .taints
            .get_or_insert_with(Vec::new)
            .push(Taint {
                key: key.into(),
                value: value.map(str::to_string),
                effect: effect.into(),
                ..Default::default()
            });
        n
    }

    fn not_ready(mut n: Node) -> Node {
        n.status.as_mut().unwrap().conditions.as_mut().unwrap()[0].status = "False".into();
        n
    }

    fn pod(spec: PodSpec) -> Pod {
        Pod {
            metadata: ObjectMeta {
                namespace: Some("shop".into()),
                name: Some("session-cache-abc".into()),
                owner_references: Some(vec![OwnerReference {
                    api_version: "apps/v1".into(),
                    kind: "ReplicaSet".into(),
                    name: "session-cache-5d8".into(),
                    uid: "u".into(),
                    controller: Some(true),
                    ..Default::default()
                }]),
                ..Default::default()
            },
            spec: Some(spec),
            status: Some(PodStatus {
                phase: Some("Running".into()),
                ..Default::default()
            }),
        }
    }

    fn pinned(pool: &str) -> PodSpec {
        PodSpec {
            node_selector: Some([("agentpool".to_string(), pool.to_string())].into()),
            ..Default::default()
        }
    }

    fn req(key: &str, op: &str, values: &[&str]) -> NodeSelectorRequirement {
        NodeSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: (!values.is_empty()).then(|| values.iter().map(|v| v.to_string()).collect()),
        }
    }

    fn with_affinity(terms: Vec<Vec<NodeSelectorRequirement>>) -> PodSpec {
        PodSpec {
            affinity: Some(Affinity {
                node_affinity: Some(NodeAffinity {
                    required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                        node_selector_terms: terms
                            .into_iter()
                            .map(|e| NodeSelectorTerm {
                                match_expressions: Some(e),
                                match_fields: None,
                            })
                            .collect(),
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn tol(key: Option<&str>, op: Option<&str>, value: Option<&str>, effect: Option<&str>) -> Toleration {
        Toleration {
            key: key.map(str::to_string),
            operator: op.map(str::to_string),
            value: value.map(str::to_string),
            effect: effect.map(str::to_string),
            toleration_seconds: None,
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn a_pod_pinned_to_a_pool_whose_other_node_is_cordoned_has_nowhere_to_go() {
        let nodes = [
            node("sys-0", "system"),
            cordon(node("user-0", "user")),
            node("user-1", "user"),
        ];
        let why = nowhere_to_go(&pod(pinned("user")), &nodes, "user-1", &[]).expect("nowhere");
        assert_eq!(
            why.to_string(),
            "no other schedulable Ready node matches nodeSelector agentpool=user"
        );
        // With user-0 schedulable again, it has a place.
        let nodes = [node("sys-0", "system"), node("user-0", "user"), node("user-1", "user")];
        assert_eq!(nowhere_to_go(&pod(pinned("user")), &nodes, "user-1", &[]), None);
    }

    #[test]
    fn a_not_ready_node_takes_no_pod() {
        let nodes = [not_ready(node("user-0", "user")), node("user-1", "user")];
        assert!(nowhere_to_go(&pod(pinned("user")), &nodes, "user-1", &[]).is_some());
        let nodes = [
            not_ready(node("user-0", "user")),
            cordon(node("sys-0", "system")),
            node("user-1", "user"),
        ];
        assert_eq!(
            nowhere_to_go(&pod(PodSpec::default()), &nodes, "user-1", &[])
                .unwrap()
                .to_string(),
            "no other node is schedulable and Ready (1 cordoned, 1 not Ready)"
        );
        assert_eq!(
            nowhere_to_go(&pod(PodSpec::default()), &[node("only", "p")], "only", &[]),
            Some(Nowhere::NoOtherNode)
        );
    }

    #[test]
    fn a_node_the_run_puts_back_first_still_counts() {
        let nodes = [cordon(node("user-0", "user")), node("user-1", "user")];
        assert_eq!(
            nowhere_to_go(&pod(pinned("user")), &nodes, "user-1", &["user-0".into()]),
            None
        );
        // Even while it reboots (NotReady, tainted not-ready): the run waits for it first.
        let rebooting = taint(
            not_ready(cordon(node("user-0", "user"))),
            "node.kubernetes.io/not-ready",
            None,
            "NoSchedule",
        );
        let nodes = [rebooting.clone(), node("user-1", "user")];
        assert_eq!(
            nowhere_to_go(&pod(pinned("user")), &nodes, "user-1", &["user-0".into()]),
            None
        );
        let nodes = [rebooting, node("user-1", "user")];
        assert!(nowhere_to_go(&pod(pinned("user")), &nodes, "user-1", &[]).is_some());
    }

    #[test]
    fn a_pod_that_tolerates_the_unschedulable_taint_may_go_to_a_cordoned_node() {
        let nodes = [cordon(node("user-0", "user")), node("user-1", "user")];
        let mut spec = pinned("user");
        spec.tolerations = Some(vec![tol(
            Some(UNSCHEDULABLE_TAINT),
            Some("Exists"),
            None,
            Some("NoSchedule"),
        )]);
        assert_eq!(nowhere_to_go(&pod(spec), &nodes, "user-1", &[]), None);
    }

    #[test]
    fn node_selector_needs_every_label() {
        let l = labels(&[("agentpool", "user"), ("zone", "1")]);
        assert!(matches_node_selector(&BTreeMap::new(), &l));
        assert!(matches_node_selector(&labels(&[("agentpool", "user")]), &l));
        assert!(matches_node_selector(
            &labels(&[("agentpool", "user"), ("zone", "1")]),
            &l
        ));
        assert!(!matches_node_selector(
            &labels(&[("agentpool", "user"), ("zone", "2")]),
            &l
        ));
        assert!(!matches_node_selector(&labels(&[("gpu", "true")]), &l));
    }

    #[test]
    fn affinity_operators_match_as_the_scheduler_matches_them() {
        let l = labels(&[("agentpool", "user"), ("cores", "8")]);
        assert!(requirement_matches(&req("agentpool", "In", &["system", "user"]), &l));
        assert!(!requirement_matches(&req("agentpool", "In", &["system"]), &l));
        assert!(!requirement_matches(&req("missing", "In", &["user"]), &l));
        assert!(
            !requirement_matches(&req("agentpool", "In", &[]), &l),
            "In without values is invalid"
        );
        assert!(requirement_matches(&req("agentpool", "NotIn", &["system"]), &l));
        assert!(!requirement_matches(&req("agentpool", "NotIn", &["user"]), &l));
        assert!(
            requirement_matches(&req("missing", "NotIn", &["user"]), &l),
            "NotIn holds without the label"
        );
        assert!(requirement_matches(&req("agentpool", "Exists", &[]), &l));
        assert!(!requirement_matches(&req("missing", "Exists", &[]), &l));
        assert!(
            !requirement_matches(&req("agentpool", "Exists", &["user"]), &l),
            "Exists with values is invalid"
        );
        assert!(requirement_matches(&req("missing", "DoesNotExist", &[]), &l));
        assert!(!requirement_matches(&req("agentpool", "DoesNotExist", &[]), &l));
        assert!(requirement_matches(&req("cores", "Gt", &["4"]), &l));
        assert!(!requirement_matches(&req("cores", "Lt", &["4"]), &l));
        assert!(
            !requirement_matches(&req("agentpool", "Gt", &["4"]), &l),
            "not an integer"
        );
        assert!(
            !requirement_matches(&req("agentpool", "Matches", &["user"]), &l),
            "unknown operator"
        );
    }

    #[test]
    fn affinity_terms_are_ored_and_their_expressions_anded() {
        let l = labels(&[("agentpool", "user"), ("zone", "1")]);
        let both = with_affinity(vec![vec![req("agentpool", "In", &["user"]), req("zone", "In", &["2"])]]);
        assert!(
            !matches_required_affinity(&both, "n", &l),
            "one expression of the term fails"
        );
        let either = with_affinity(vec![
            vec![req("agentpool", "In", &["system"])],
            vec![req("zone", "In", &["1"])],
        ]);
        assert!(matches_required_affinity(&either, "n", &l));
        assert!(
            !matches_required_affinity(&with_affinity(vec![]), "n", &l),
            "no term matches nothing"
        );
        assert!(
            !matches_required_affinity(&with_affinity(vec![vec![]]), "n", &l),
            "an empty term matches nothing"
        );
        assert!(
            matches_required_affinity(&PodSpec::default(), "n", &l),
            "no affinity: any node"
        );
        let by_name = NodeSelectorTerm {
            match_expressions: None,
            match_fields: Some(vec![req("metadata.name", "In", &["n"])]),
        };
        assert!(term_matches(&by_name, "n", &l));
        assert!(!term_matches(&by_name, "m", &l));
    }

    #[test]
    fn a_pod_whose_required_affinity_matches_no_other_node_is_named_with_it() {
        let nodes = [node("sys-0", "system"), node("user-0", "user"), node("user-1", "user")];
        let spec = with_affinity(vec![vec![req("agentpool", "In", &["gpu"])]]);
        assert_eq!(
            nowhere_to_go(&pod(spec), &nodes, "user-1", &[]).unwrap().to_string(),
            "no other schedulable Ready node matches its required node affinity (agentpool in (gpu))"
        );
        let spec = with_affinity(vec![vec![req("agentpool", "NotIn", &["system"])]]);
        assert_eq!(nowhere_to_go(&pod(spec), &nodes, "user-1", &[]), None);
    }

    #[test]
    fn tolerations_match_as_kubernetes_matches_them() {
        let t = Taint {
            key: "sku".into(),
            value: Some("gpu".into()),
            effect: "NoSchedule".into(),
            ..Default::default()
        };
        assert!(tolerates(
            &tol(Some("sku"), Some("Equal"), Some("gpu"), Some("NoSchedule")),
            &t
        ));
        assert!(
            tolerates(&tol(Some("sku"), None, Some("gpu"), Some("NoSchedule")), &t),
            "empty operator is Equal"
        );
        assert!(!tolerates(&tol(Some("sku"), None, Some("cpu"), Some("NoSchedule")), &t));
        assert!(
            tolerates(&tol(Some("sku"), Some("Exists"), None, None), &t),
            "no effect: every effect"
        );
        assert!(!tolerates(
            &tol(Some("sku"), Some("Exists"), None, Some("NoExecute")),
            &t
        ));
        assert!(
            tolerates(&tol(None, Some("Exists"), None, None), &t),
            "empty key with Exists: every taint"
        );
        assert!(!tolerates(&tol(Some("other"), Some("Exists"), None, None), &t));
    }

    #[test]
    fn only_no_schedule_and_no_execute_taints_keep_a_pod_off() {
        let nodes = [
            taint(node("user-0", "user"), "sku", Some("gpu"), "NoSchedule"),
            node("user-1", "user"),
        ];
        let why = nowhere_to_go(&pod(pinned("user")), &nodes, "user-1", &[]).expect("nowhere");
        assert_eq!(
            why.to_string(),
            "no other schedulable Ready node matches nodeSelector agentpool=user and tolerates the taints (user-0: sku=gpu:NoSchedule)"
        );
        let nodes = [
            taint(node("user-0", "user"), "maint", None, "NoExecute"),
            node("user-1", "user"),
        ];
        assert!(nowhere_to_go(&pod(pinned("user")), &nodes, "user-1", &[]).is_some());
        let nodes = [
            taint(node("user-0", "user"), "sku", Some("gpu"), "PreferNoSchedule"),
            node("user-1", "user"),
        ];
        assert_eq!(nowhere_to_go(&pod(pinned("user")), &nodes, "user-1", &[]), None);
        // Tolerated: it may go there.
        let nodes = [
            taint(node("user-0", "user"), "sku", Some("gpu"), "NoSchedule"),
            node("user-1", "user"),
        ];
        let mut spec = pinned("user");
        spec.tolerations = Some(vec![tol(Some("sku"), Some("Exists"), None, None)]);
        assert_eq!(nowhere_to_go(&pod(spec), &nodes, "user-1", &[]), None);
    }

    #[test]
    fn only_pods_a_controller_replaces_are_counted() {
        let nodes = [
            node("sys-0", "system"),
            cordon(node("user-0", "user")),
            node("user-1", "user"),
        ];
        let replaced = pod(pinned("user"));
        let mut bare = replaced.clone();
        bare.metadata.owner_references = None;
        bare.metadata.name = Some("debug".into());
        let mut done = replaced.clone();
        done.status.as_mut().unwrap().phase = Some("Succeeded".into());
        let snap = ClusterSnapshot {
            nodes: nodes.to_vec(),
            ..Default::default()
        };
        let s = stranded_in(&snap, &[replaced, bare, done], &["user-1".into()], &[]);
        assert_eq!(s.len(), 1, "{s:?}");
        assert_eq!(
            s[0].to_string(),
            "shop/session-cache-abc (no other schedulable Ready node matches nodeSelector agentpool=user)"
        );
    }

    fn with_requests(mut p: Pod, cpu: &str) -> Pod {
        use k8s_openapi::api::core::v1::{Container, ResourceRequirements};
        use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
        p.spec.get_or_insert_with(Default::default).containers = vec![Container {
            name: "main".into(),
            resources: Some(ResourceRequirements {
                requests: Some([("cpu".to_string(), Quantity(cpu.into()))].into()),
                ..Default::default()
            }),
            ..Default::default()
        }];
        p
    }

    fn with_cpu(mut n: Node, cpu: &str) -> Node {
        use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
        n.status.as_mut().unwrap().allocatable = Some(
            [
                ("cpu".to_string(), Quantity(cpu.into())),
                ("memory".to_string(), Quantity("8Gi".into())),
                ("pods".to_string(), Quantity("110".into())),
            ]
            .into(),
        );
        n
    }

    fn named(mut p: Pod, name: &str, on: &str) -> Pod {
        p.metadata.name = Some(name.into());
        p.spec.get_or_insert_with(Default::default).node_name = Some(on.into());
        p
    }

    #[test]
    fn pods_that_pass_the_filters_but_find_no_room_are_stranded_with_the_reason() {
        // user-0 has 1 core left: one of the two 800m pods fits there, the other does not.
        let nodes = vec![
            with_cpu(node("sys-0", "system"), "4"),
            with_cpu(node("user-0", "user"), "2"),
            with_cpu(node("user-1", "user"), "4"),
        ];
        let a = named(with_requests(pod(pinned("user")), "800m"), "cache-a", "user-1");
        let b = named(with_requests(pod(pinned("user")), "800m"), "cache-b", "user-1");
        let there = named(with_requests(pod(PodSpec::default()), "1"), "web", "user-0");
        let snap = ClusterSnapshot {
            nodes,
            pods: vec![a.clone(), b.clone(), there],
            pdbs: vec![],
        };
        let s = stranded_in(&snap, &[a.clone(), b.clone()], &["user-1".into()], &[]);
        assert_eq!(s.len(), 1, "{s:?}");
        assert_eq!(
            s[0].to_string(),
            "shop/cache-b (no other schedulable Ready node matches nodeSelector agentpool=user and has room for its requests of cpu 800m (Insufficient cpu on 1 node))"
        );
        // The filters alone let both through.
        assert_eq!(nowhere_to_go(&a, &snap.nodes, "user-1", &[]), None);
        assert_eq!(nowhere_to_go(&b, &snap.nodes, "user-1", &[]), None);
    }

    #[test]
    fn a_prefer_no_schedule_taint_is_a_preference_not_a_filter() {
        let nodes = vec![
            with_cpu(
                taint(node("user-0", "user"), "aks-patch.io/pending", None, "PreferNoSchedule"),
                "2",
            ),
            with_cpu(node("user-1", "user"), "2"),
        ];
        let p = named(with_requests(pod(pinned("user")), "1"), "cache", "user-1");
        let snap = ClusterSnapshot {
            nodes,
            pods: vec![p.clone()],
            pdbs: vec![],
        };
        assert!(stranded_in(&snap, &[p], &["user-1".into()], &[]).is_empty());
    }
}
