//! The drains of the nodes that will (or may) reboot, planned before any change: the pods
//! that will refuse to drain, the PodDisruptionBudgets that can never allow a disruption, and
//! the pods that would have nowhere to go (no other schedulable Ready node fits them:
//! [`crate::kube::schedule`]).

use super::super::journal::{NodeState, RebootPolicy, RunRecord};
use super::super::plan::PlanEntry;
use super::super::probed::{self, ProbedNode};
use super::super::refusal::{Obstacle, Refusal};
use super::super::resume;
use crate::kube::schedule::Stranded;
use crate::kube::snapshot::ClusterSnapshot;
use crate::kube::{self as k, DrainOptions, DrainPlan, KubeError, PdbInfo, PodRef, RefuseReason, SkipReason};
use serde::ser::SerializeStruct;
use serde::{Serialize, Serializer};
use std::fmt::Display;

/// Whether a node to patch will be rebooted (and so drained).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WouldReboot {
    /// The reboot marker, a pending kernel, or `--reboot always`.
    Yes,
    /// If the upgrade asks for it.
    Maybe,
    /// `--reboot never`.
    No,
}

/// What pre-flight found for one node that may be drained.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeCheck {
    pub node: String,
    pub reboot: WouldReboot,
    #[serde(serialize_with = "texts")]
    pub evict: Vec<PodRef>,
    /// Pods that will certainly refuse to drain, with the flag that would allow them.
    pub refused: Vec<RefusedPod>,
    pub skipped: Vec<SkippedPod>,
    /// PDBs that, as configured, can never allow a disruption.
    #[serde(serialize_with = "never_allowing")]
    pub never_allowing_pdbs: Vec<PdbInfo>,
    /// PDBs that allow no disruption right now.
    #[serde(serialize_with = "pdb_names")]
    pub blocking_pdbs: Vec<PdbInfo>,
    /// Pods to evict whose replacements no other schedulable Ready node would take.
    pub nowhere_to_go: Vec<Stranded>,
}

/// A pod that will refuse to drain without a consent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedPod {
    pub pod: PodRef,
    pub reason: RefuseReason,
}

impl Serialize for RefusedPod {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("RefusedPod", 3)?;
        st.serialize_field("pod", &self.pod.to_string())?;
        st.serialize_field("reason", &self.reason.to_string())?;
        st.serialize_field("flag", self.reason.flag())?;
        st.end()
    }
}

/// A pod the drain leaves alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SkippedPod {
    #[serde(serialize_with = "text")]
    pub pod: PodRef,
    #[serde(serialize_with = "text")]
    pub reason: SkipReason,
}

fn text<S: Serializer, T: Display>(v: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

fn texts<S: Serializer, T: Display>(v: &[T], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(v.iter().map(T::to_string))
}

fn pdb_name(p: &PdbInfo) -> String {
    format!("{}/{}", p.namespace, p.name)
}

/// `namespace/name (why it never allows)`.
pub fn never_allowing_text(p: &PdbInfo) -> String {
    format!("{} ({})", pdb_name(p), p.never_allows.as_deref().unwrap_or_default())
}

fn pdb_names<S: Serializer>(v: &[PdbInfo], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(v.iter().map(pdb_name))
}

fn never_allowing<S: Serializer>(v: &[PdbInfo], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(v.iter().map(never_allowing_text))
}

impl NodeCheck {
    /// `namespace/name` of the PDBs that allow no disruption right now.
    pub fn blocking_pdb_names(&self) -> Vec<String> {
        self.blocking_pdbs.iter().map(pdb_name).collect()
    }
}

/// The nodes to patch that will (or may) reboot, and so be drained, in plan order. A node
/// that a resumed run left past its drain is not drained again.
pub fn to_drain(
    entries: &[PlanEntry],
    probes: &[ProbedNode],
    policy: RebootPolicy,
    resumed: Option<&RunRecord>,
) -> Vec<(String, WouldReboot)> {
    entries
        .iter()
        .filter(|e| e.patch())
        .filter(|e| {
            !matches!(
                resume::state_of(resumed, &e.name),
                Some(NodeState::Rebooting | NodeState::Back | NodeState::Drained | NodeState::Unproven)
            )
        })
        .filter_map(|e| {
            let certain = probed::of(probes, &e.name).is_some_and(ProbedNode::reboot_certain);
            let reboot = match policy {
                RebootPolicy::Never => WouldReboot::No,
                RebootPolicy::Always => WouldReboot::Yes,
                RebootPolicy::IfRequired if certain => WouldReboot::Yes,
                RebootPolicy::IfRequired => WouldReboot::Maybe,
            };
            (reboot != WouldReboot::No).then(|| (e.name.clone(), reboot))
        })
        .collect()
}

/// What pre-flight makes of one node's drain `plan`: `cluster`, the cluster as it is now,
/// its nodes with the room they have (one that the plan takes out later is still a place for
/// these pods: it is back by then); `coming_back`, the nodes a resumed run left cordoned
/// (they are uncordoned before any other node is taken out).
pub fn check(reboot: WouldReboot, plan: &DrainPlan, cluster: &ClusterSnapshot, coming_back: &[String]) -> NodeCheck {
    NodeCheck {
        node: plan.node.clone(),
        reboot,
        evict: plan.evict.clone(),
        refused: plan
            .refused
            .iter()
            .map(|(pod, reason)| RefusedPod {
                pod: pod.clone(),
                reason: reason.clone(),
            })
            .collect(),
        skipped: plan
            .skipped
            .iter()
            .map(|(pod, reason)| SkippedPod {
                pod: pod.clone(),
                reason: reason.clone(),
            })
            .collect(),
        never_allowing_pdbs: plan.never_allowing_pdbs().into_iter().cloned().collect(),
        blocking_pdbs: plan.blocking_pdbs().into_iter().cloned().collect(),
        nowhere_to_go: plan.stranded(cluster, coming_back),
    }
}

/// Plan the drain of every node to patch that will (or may) reboot ([`to_drain`]), reading
/// the cluster with lists, not node by node: its nodes, pods and PodDisruptionBudgets once
/// ([`k::snapshot::read`], [`k::plan_drains`]).
pub async fn drains(
    client: &::kube::Client,
    entries: &[PlanEntry],
    probes: &[ProbedNode],
    opts: &DrainOptions,
    policy: RebootPolicy,
    resumed: Option<&RunRecord>,
) -> Result<Vec<NodeCheck>, (String, KubeError)> {
    let todo = to_drain(entries, probes, policy, resumed);
    if todo.is_empty() {
        return Ok(vec![]);
    }
    let snapshot = k::snapshot::read(client).await.map_err(|err| {
        (
            "cannot read the cluster's nodes, pods and PodDisruptionBudgets".to_string(),
            err,
        )
    })?;
    let names: Vec<String> = todo.iter().map(|(n, _)| n.clone()).collect();
    let plans = k::plan_drains(client, &snapshot, &names, opts)
        .await
        .map_err(|err| ("cannot plan the drains".to_string(), err))?;
    let coming_back = resume::coming_back(resumed);
    Ok(todo
        .iter()
        .zip(&plans)
        .map(|((_, reboot), plan)| check(*reboot, plan, &snapshot, &coming_back))
        .collect())
}

/// Pods that will refuse to drain and PDBs that can never allow: refuse the run now.
pub fn certain_failures(checks: &[NodeCheck]) -> Option<Refusal> {
    let mut problems = vec![];
    let mut flags: Vec<&str> = vec![];
    for c in checks.iter().filter(|c| c.reboot == WouldReboot::Yes) {
        for r in &c.refused {
            problems.push(format!(
                "node {}: pod {} {} (needs {})",
                c.node,
                r.pod,
                r.reason,
                r.reason.flag()
            ));
            if !flags.contains(&r.reason.flag()) {
                flags.push(r.reason.flag());
            }
        }
        for p in &c.never_allowing_pdbs {
            problems.push(format!(
                "node {}: PodDisruptionBudget {} can never allow the drain",
                c.node,
                never_allowing_text(p)
            ));
        }
    }
    if problems.is_empty() {
        return None;
    }
    let mut hint = vec![];
    if !flags.is_empty() {
        flags.sort();
        hint.push(format!("rerun with {} to evict those pods anyway", flags.join(" and ")));
    }
    if checks.iter().any(|c| !c.never_allowing_pdbs.is_empty()) {
        hint.push("relax those PodDisruptionBudgets (or scale their workloads up)".into());
    }
    hint.push("or leave the nodes out with --nodes / --nodepool / --selector; --dry-run shows every drain".into());
    Some(
        Refusal::new(
            Obstacle::Options,
            format!("these drains would certainly fail: {}", problems.join("; ")),
        )
        .hint(hint.join("; ")),
    )
}

/// What the operator can do about pods with nowhere to go.
pub const PENDING_PODS_HINT: &str = "make room for them first (uncordon a node they fit, or add one: az aks nodepool scale), or leave the node out with --nodes / --nodepool / --selector; --allow-pending-pods takes it out anyway (they stay Pending until it is back)";

/// The pods a drain of `node` would leave with nowhere to go, named with why.
pub fn nowhere_to_go_text(node: &str, stranded: &[Stranded]) -> String {
    let pods: Vec<String> = stranded.iter().map(Stranded::to_string).collect();
    format!(
        "draining node {node} would leave {} pod(s) with nowhere to go (Pending until it is back): {}",
        stranded.len(),
        pods.join(", ")
    )
}

/// Pods that the drain of a node that will (or may) reboot would leave with nowhere to go:
/// refuse the run now (unless `--allow-pending-pods`, which the caller decides).
pub fn pending_pods(checks: &[NodeCheck]) -> Option<Refusal> {
    let problems: Vec<String> = checks
        .iter()
        .filter(|c| c.reboot != WouldReboot::No && !c.nowhere_to_go.is_empty())
        .map(|c| {
            let text = nowhere_to_go_text(&c.node, &c.nowhere_to_go);
            if c.reboot == WouldReboot::Yes {
                text
            } else {
                format!("if it needs a reboot after the upgrade, {text}")
            }
        })
        .collect();
    if problems.is_empty() {
        return None;
    }
    Some(Refusal::new(Obstacle::Options, problems.join("; ")).hint(PENDING_PODS_HINT))
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::kube::schedule::{Constraint, Nowhere};

    pub fn check(node: &str, reboot: WouldReboot, stranded: Vec<Stranded>) -> NodeCheck {
        NodeCheck {
            node: node.into(),
            reboot,
            evict: stranded.iter().map(|s| s.pod.clone()).collect(),
            refused: vec![],
            skipped: vec![],
            never_allowing_pdbs: vec![],
            blocking_pdbs: vec![],
            nowhere_to_go: stranded,
        }
    }

    fn pod(namespace: &str, name: &str) -> PodRef {
        PodRef {
            namespace: namespace.into(),
            name: name.into(),
            uid: "u".into(),
        }
    }

    /// `check` with PDB app/web-pdb, which can never allow its drain.
    pub fn never_allowing(mut c: NodeCheck) -> NodeCheck {
        c.evict.push(pod("app", "web-1"));
        c.never_allowing_pdbs.push(PdbInfo {
            namespace: "app".into(),
            name: "web-pdb".into(),
            disruptions_allowed: 0,
            current_healthy: 1,
            desired_healthy: 1,
            expected_pods: 1,
            pods: vec![pod("app", "web-1")],
            never_allows: Some("maxUnavailable is 0".into()),
        });
        c
    }

    pub fn session_cache() -> Stranded {
        Stranded {
            pod: pod("shop", "session-cache-7c9"),
            why: Nowhere::NoneMatches(vec![Constraint::NodeSelector(
                [("agentpool".to_string(), "user".to_string())].into(),
            )]),
        }
    }

    #[test]
    fn a_drain_that_would_strand_a_pod_refuses_the_run_naming_it_and_why() {
        let checks = [
            check("user-1", WouldReboot::Yes, vec![session_cache()]),
            check("user-2", WouldReboot::Yes, vec![]),
        ];
        let r = pending_pods(&checks).expect("refused");
        assert_eq!(
            r.why,
            "draining node user-1 would leave 1 pod(s) with nowhere to go (Pending until it is back): shop/session-cache-7c9 (no other schedulable Ready node matches nodeSelector agentpool=user)"
        );
        assert_eq!((r.what, r.changed), (Obstacle::Options, false));
        assert!(
            r.hint.as_deref().unwrap_or_default().contains("--allow-pending-pods"),
            "{r:?}"
        );
        assert!(certain_failures(&checks).is_none(), "not a drain certain to fail");
    }

    #[test]
    fn a_node_that_may_reboot_is_refused_with_the_condition_said() {
        let r = pending_pods(&[check("user-1", WouldReboot::Maybe, vec![session_cache()])]).expect("refused");
        assert!(
            r.why
                .starts_with("if it needs a reboot after the upgrade, draining node user-1"),
            "{}",
            r.why
        );
    }

    #[test]
    fn nodes_that_are_not_drained_or_strand_nothing_refuse_nothing() {
        assert!(pending_pods(&[check("user-1", WouldReboot::No, vec![session_cache()])]).is_none());
        assert!(pending_pods(&[check("user-1", WouldReboot::Yes, vec![])]).is_none());
    }

    #[test]
    fn pods_that_need_a_consent_and_budgets_that_never_allow_refuse_the_run_naming_the_fix() {
        let mut c = never_allowing(check("user-1", WouldReboot::Yes, vec![]));
        c.refused.push(RefusedPod {
            pod: pod("default", "debug-shell"),
            reason: RefuseReason::NoController,
        });
        let r = certain_failures(&[c.clone()]).expect("refused");
        assert_eq!(
            r.why,
            "these drains would certainly fail: node user-1: pod default/debug-shell has no controller, so nothing would recreate it (needs --force); node user-1: PodDisruptionBudget app/web-pdb (maxUnavailable is 0) can never allow the drain"
        );
        let hint = r.hint.unwrap_or_default();
        assert!(
            hint.starts_with("rerun with --force to evict those pods anyway; relax those PodDisruptionBudgets"),
            "{hint}"
        );
        // A node that only may reboot is not certain to be drained.
        c.reboot = WouldReboot::Maybe;
        assert_eq!(certain_failures(&[c]), None);
    }

    #[test]
    fn the_dry_runs_drains_keep_their_json_shape() {
        let mut c = never_allowing(check("user-1", WouldReboot::Maybe, vec![]));
        c.refused.push(RefusedPod {
            pod: pod("shop", "cache"),
            reason: RefuseReason::EmptyDir,
        });
        c.skipped.push(SkippedPod {
            pod: pod("kube-system", "kube-proxy-1"),
            reason: SkipReason::DaemonSet {
                daemonset: "kube-proxy".into(),
            },
        });
        c.blocking_pdbs = c.never_allowing_pdbs.clone();
        assert_eq!(
            serde_json::to_value(&c).unwrap(),
            serde_json::json!({
                "node": "user-1",
                "reboot": "maybe",
                "evict": ["app/web-1"],
                "refused": [{"pod": "shop/cache", "reason": "uses emptyDir volumes whose data would be lost", "flag": "--delete-emptydir-data"}],
                "skipped": [{"pod": "kube-system/kube-proxy-1", "reason": "managed by DaemonSet kube-proxy"}],
                "neverAllowingPdbs": ["app/web-pdb (maxUnavailable is 0)"],
                "blockingPdbs": ["app/web-pdb"],
                "nowhereToGo": [],
            })
        );
    }
}
