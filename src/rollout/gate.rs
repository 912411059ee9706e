//! The cluster health gate: checked before the lock is taken and before every node's cordon.
//! No node may be disrupted while another node of the cluster is out: NotReady or Unknown,
//! tainted unreachable/not-ready, or marked as in the hands of an aks-patch run
//! ([`IN_PROGRESS_ANNOTATION`]); nor while a workload evicted from the previous node is not
//! Ready again. Counting every node of the cluster (not only the plan) is what keeps
//! "never two nodes out at once" true when a node was down before the run.

use super::ports::{Cluster, PortError};
use super::progress::{HoldTracker, Holding, Progress};
use crate::kube::drain::{in_progress_run, WorkloadRef, IN_PROGRESS_ANNOTATION};
use crate::kube::nodes::{NodeInfo, Readiness};
use crate::kube::reboot::NOT_READY_TAINTS;
use crate::kube::KubeError;
use crate::retry::with_retry;
use ::kube::api::Api;
use ::kube::Client;
use k8s_openapi::api::apps::v1::{ReplicaSet, StatefulSet};
use k8s_openapi::api::core::v1::Node;
use serde::Serialize;
use std::fmt;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Something that keeps the next disruption from starting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Blocker {
    /// Another node is out of service by itself.
    #[serde(rename_all = "camelCase")]
    NodeDown { node: String, why: String },
    /// Another node is in the hands of an aks-patch run (annotated).
    #[serde(rename_all = "camelCase")]
    NodeInProgress { node: String, run_id: String, ready: bool },
    /// A workload evicted from the previous node is not Ready again.
    #[serde(rename_all = "camelCase")]
    WorkloadNotReady {
        workload: WorkloadRef,
        ready: i32,
        desired: i32,
    },
}

impl fmt::Display for Blocker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Blocker::NodeDown { node, why } => write!(f, "node {node} is {why}"),
            Blocker::NodeInProgress { node, run_id, ready } => write!(
                f,
                "node {node} is out of service in aks-patch run {run_id} (annotation {IN_PROGRESS_ANNOTATION}{})",
                if *ready { "" } else { ", not Ready" }
            ),
            Blocker::WorkloadNotReady {
                workload,
                ready,
                desired,
            } => {
                write!(f, "{workload} has {ready} of {desired} pod(s) Ready")
            }
        }
    }
}

impl Blocker {
    /// What the operator can do about it.
    pub fn hint(&self) -> String {
        match self {
            Blocker::NodeDown { node, .. } => format!(
                "bring node {node} back (kubectl describe node {node}), or wait for it; aks-patch takes no second node out"
            ),
            Blocker::NodeInProgress { node, run_id, .. } => format!(
                "if run {run_id} is still going, wait for it; if it died, resume it (aks-patch apply ... --resume) or, once the node is healthy, `{}`",
                crate::kube::drain::put_back_by_hand(&[node])
            ),
            Blocker::WorkloadNotReady { workload, .. } => format!(
                "check why its pods do not become Ready (kubectl -n {} get pods), then run again with --resume",
                workload.namespace
            ),
        }
    }
}

/// Why the health gate did not open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GateStop {
    Blocked { blockers: Vec<Blocker>, waited: Duration },
    Cancelled,
    Failed(PortError),
}

impl fmt::Display for GateStop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GateStop::Blocked { blockers, waited } => write!(
                f,
                "{} (waited {}s, --health-wait)",
                blockers_text(blockers),
                waited.as_secs()
            ),
            GateStop::Cancelled => write!(f, "interrupted while waiting for the cluster to be healthy"),
            GateStop::Failed(e) => write!(f, "cannot check the cluster's health: {e}"),
        }
    }
}

impl GateStop {
    pub fn hint(&self) -> Option<String> {
        match self {
            GateStop::Blocked { blockers, .. } => {
                let mut hints: Vec<String> = blockers.iter().map(Blocker::hint).collect();
                hints.dedup();
                Some(hints.join("; "))
            }
            _ => None,
        }
    }
}

/// How many nodes may be out at once, seen from the node about to be taken out: `allowed`
/// nodes of its `scope` (every node of the cluster, or the nodes of its pool when
/// `--max-unavailable` is a percentage), itself included. One at a time is one node of the
/// cluster: no other node may be out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Budget {
    pub allowed: usize,
    /// `None`: the whole cluster.
    pub scope: Option<std::collections::BTreeSet<String>>,
}

impl Budget {
    pub fn one() -> Budget {
        Budget {
            allowed: 1,
            scope: None,
        }
    }

    /// What of `blockers` keeps the node from going out: every workload not Ready again, and
    /// the nodes out of its scope once they leave no room for it.
    pub fn blocking(&self, blockers: Vec<Blocker>) -> Vec<Blocker> {
        let counts = |b: &Blocker| match b {
            Blocker::NodeDown { node, .. } | Blocker::NodeInProgress { node, .. } => {
                self.scope.as_ref().is_none_or(|s| s.contains(node))
            }
            Blocker::WorkloadNotReady { .. } => false,
        };
        let out = blockers.iter().filter(|b| counts(b)).count();
        if out < self.allowed {
            blockers
                .into_iter()
                .filter(|b| matches!(b, Blocker::WorkloadNotReady { .. }))
                .collect()
        } else {
            blockers
                .into_iter()
                .filter(|b| counts(b) || matches!(b, Blocker::WorkloadNotReady { .. }))
                .collect()
        }
    }
}

/// The health gate, waited for (at most `max_wait`), telling what blocks while it does.
/// `exempt`: the node(s) in hand (the first one is the node the wait is for); `budget`: how
/// many nodes may be out with it.
#[allow(clippy::too_many_arguments)]
pub async fn wait_gate(
    cluster: &dyn Cluster,
    exempt: &[String],
    workloads: &[WorkloadRef],
    budget: &Budget,
    max_wait: Duration,
    poll: Duration,
    cancel: &CancellationToken,
    progress: &dyn Progress,
) -> Result<(), GateStop> {
    let start = Instant::now();
    let mut holds = HoldTracker::default();
    loop {
        let all = cluster.blockers(exempt, workloads).await.map_err(GateStop::Failed)?;
        let blockers = budget.blocking(all);
        if blockers.is_empty() {
            return Ok(());
        }
        let waited = start.elapsed();
        if waited >= max_wait {
            return Err(GateStop::Blocked { blockers, waited });
        }
        holds.show(
            progress,
            exempt.first().map(String::as_str),
            Holding::Gate(blockers.clone()),
            waited,
            max_wait,
        );
        tokio::select! {
            _ = cluster.blockers_changed(&blockers, poll.min(max_wait - waited)) => {}
            _ = cancel.cancelled() => return Err(GateStop::Cancelled),
        }
    }
}

/// Why `node` counts as out of service by itself, if it does.
pub fn node_down_reason(node: &Node) -> Option<String> {
    let node = NodeInfo::of(node);
    let taints: Vec<String> = node
        .taints
        .iter()
        .filter(|t| NOT_READY_TAINTS.contains(&t.key.as_str()))
        .map(|t| format!("{}:{}", t.key, t.effect.as_str()))
        .collect();
    match node.readiness {
        Readiness::Ready if taints.is_empty() => None,
        Readiness::Ready => Some(format!("tainted {}", taints.join(", "))),
        Readiness::NotReady => Some("NotReady".into()),
        Readiness::Unknown => Some("Ready=Unknown (the node stopped reporting)".into()),
        Readiness::NoCondition => Some("without a Ready condition".into()),
    }
}

/// The nodes that block a disruption. `exempt`: the node(s) this run has in hand.
pub fn node_blockers(nodes: &[Node], exempt: &[String]) -> Vec<Blocker> {
    let mut out = vec![];
    for n in nodes {
        let name = n.metadata.name.clone().unwrap_or_default();
        if exempt.contains(&name) {
            continue;
        }
        let down = node_down_reason(n);
        if let Some(run_id) = in_progress_run(n) {
            out.push(Blocker::NodeInProgress {
                node: name,
                run_id: run_id.to_string(),
                ready: down.is_none(),
            });
        } else if let Some(why) = down {
            out.push(Blocker::NodeDown { node: name, why });
        }
    }
    out
}

/// Read the cluster and say what blocks the next disruption (empty: nothing).
pub async fn check(client: &Client, exempt: &[String], workloads: &[WorkloadRef]) -> Result<Vec<Blocker>, KubeError> {
    let nodes = crate::kube::list_nodes(client, None).await?;
    let mut out = node_blockers(&nodes, exempt);
    for w in workloads {
        if let Some(b) = workload_blocker(client, w).await? {
            out.push(b);
        }
    }
    Ok(out)
}

async fn workload_blocker(client: &Client, w: &WorkloadRef) -> Result<Option<Blocker>, KubeError> {
    let what = format!("reading {w}");
    let (ready, desired) = match w.kind.as_str() {
        "ReplicaSet" => {
            let api: Api<ReplicaSet> = Api::namespaced(client.clone(), &w.namespace);
            match with_retry(&what, || api.get_opt(&w.name))
                .await
                .map_err(|e| KubeError::api(what, e))?
            {
                None => return Ok(None),
                Some(rs) => (
                    rs.status.as_ref().and_then(|s| s.ready_replicas).unwrap_or(0),
                    rs.spec.replicas.unwrap_or(1),
                ),
            }
        }
        "StatefulSet" => {
            let api: Api<StatefulSet> = Api::namespaced(client.clone(), &w.namespace);
            match with_retry(&what, || api.get_opt(&w.name))
                .await
                .map_err(|e| KubeError::api(what, e))?
            {
                None => return Ok(None),
                Some(ss) => (
                    ss.status.as_ref().and_then(|s| s.ready_replicas).unwrap_or(0),
                    ss.spec.replicas.unwrap_or(1),
                ),
            }
        }
        // Jobs finish, bare pods are not recreated: nothing to wait for.
        _ => return Ok(None),
    };
    Ok((ready < desired).then(|| Blocker::WorkloadNotReady {
        workload: w.clone(),
        ready,
        desired,
    }))
}

pub fn blockers_text(blockers: &[Blocker]) -> String {
    blockers.iter().map(|b| b.to_string()).collect::<Vec<_>>().join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{NodeCondition, NodeSpec, NodeStatus, Taint};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn node(name: &str, ready: Option<&str>, taints: &[&str], run: Option<&str>) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some(name.into()),
                annotations: run.map(|r| [(IN_PROGRESS_ANNOTATION.to_string(), r.to_string())].into()),
                ..Default::default()
            },
            spec: Some(NodeSpec {
                taints: Some(
                    taints
                        .iter()
                        .map(|k| Taint {
                            key: k.to_string(),
                            effect: "NoSchedule".into(),
                            ..Default::default()
                        })
                        .collect(),
                ),
                ..Default::default()
            }),
            status: Some(NodeStatus {
                conditions: ready.map(|r| {
                    vec![NodeCondition {
                        type_: "Ready".into(),
                        status: r.into(),
                        ..Default::default()
                    }]
                }),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn healthy_nodes_block_nothing() {
        let nodes = [
            node("a", Some("True"), &[], None),
            node("b", Some("True"), &["other"], None),
        ];
        assert!(node_blockers(&nodes, &[]).is_empty());
    }

    #[test]
    fn any_other_node_down_blocks_and_is_named() {
        let nodes = [
            node("a", Some("True"), &[], None),
            node("b", Some("False"), &[], None),
            node("c", Some("Unknown"), &[], None),
            node("d", Some("True"), &["node.kubernetes.io/unreachable"], None),
            node("e", None, &[], None),
        ];
        let b = node_blockers(&nodes, &["a".into()]);
        let names: Vec<String> = b.iter().map(|b| b.to_string()).collect();
        assert_eq!(b.len(), 4, "{names:?}");
        assert!(names[0].contains("node b is NotReady"));
        assert!(names[1].contains("node c is Ready=Unknown"));
        assert!(names[2].contains("tainted node.kubernetes.io/unreachable"));
        assert!(names[3].contains("without a Ready condition"));
    }

    #[test]
    fn the_node_in_hand_is_exempt_but_a_marked_one_is_out_even_if_ready() {
        let nodes = [
            node("mine", Some("False"), &[], Some("run-1")),
            node("theirs", Some("True"), &[], Some("run-2")),
        ];
        let b = node_blockers(&nodes, &["mine".into()]);
        assert_eq!(
            b,
            vec![Blocker::NodeInProgress {
                node: "theirs".into(),
                run_id: "run-2".into(),
                ready: true
            }]
        );
        assert!(b[0].hint().contains("--resume"));
    }
}
