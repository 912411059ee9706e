//! Pre-flight: what will certainly fail is found before the lock and before any change.
//! For every node that will (or may) reboot: the pods that will refuse to drain, the
//! PodDisruptionBudgets that can never allow a disruption, and the pods that would have
//! nowhere to go (no other schedulable Ready node fits them: [`crate::kube::schedule`]).

use super::journal::{NodeState, RebootPolicy};
use super::plan::PlanEntry;
use crate::commands::scan::ScanRow;
use crate::kube::schedule::Stranded;
use crate::kube::{self as k, DrainOptions, KubeError};
use serde_json::json;
use std::collections::BTreeMap;

/// Why the run is refused, and what would let it through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub message: String,
    pub hint: String,
}

/// What pre-flight found for one node that may be drained.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeCheck {
    pub node: String,
    /// `yes` (reboot marker, pending kernel, --reboot always), `maybe`, `no`.
    pub reboot: &'static str,
    pub evict: Vec<String>,
    /// Pods that will certainly refuse to drain, with the flag that would allow them.
    pub refused: Vec<serde_json::Value>,
    pub skipped: Vec<serde_json::Value>,
    /// PDBs that, as configured, can never allow a disruption.
    pub never_allowing_pdbs: Vec<String>,
    /// PDBs that allow no disruption right now.
    pub blocking_pdbs: Vec<String>,
    /// Pods to evict whose replacements no other schedulable Ready node would take.
    pub nowhere_to_go: Vec<Stranded>,
}

pub async fn drains(
    client: &::kube::Client,
    entries: &[PlanEntry],
    before: &BTreeMap<String, ScanRow>,
    opts: &DrainOptions,
    policy: RebootPolicy,
    resume_states: &BTreeMap<String, NodeState>,
    coming_back: &[String],
) -> Result<Vec<NodeCheck>, (String, KubeError)> {
    let mut out = vec![];
    let mut nodes = None;
    for e in entries.iter().filter(|e| e.patch()) {
        if matches!(
            resume_states.get(&e.name),
            Some(NodeState::Rebooting | NodeState::Back | NodeState::Drained | NodeState::Unproven)
        ) {
            continue;
        }
        let b = before.get(&e.name);
        let certain =
            b.and_then(|b| b.reboot_required).unwrap_or(false) || b.and_then(|b| b.pending_kernel.clone()).is_some();
        let reboot = match policy {
            RebootPolicy::Never => "no",
            RebootPolicy::Always => "yes",
            RebootPolicy::IfRequired if certain => "yes",
            RebootPolicy::IfRequired => "maybe",
        };
        if reboot == "no" {
            continue;
        }
        let plan = k::plan_drain(client, &e.name, opts)
            .await
            .map_err(|err| (format!("cannot plan the drain of {}", e.name), err))?;
        // The other nodes as they are now: one that the plan takes out later is still a place
        // for these pods (it is back by then).
        if nodes.is_none() {
            nodes = Some(
                k::list_nodes(client, None)
                    .await
                    .map_err(|err| ("cannot list the cluster's nodes".to_string(), err))?,
            );
        }
        let nowhere_to_go = plan.stranded(nodes.as_deref().unwrap_or_default(), coming_back);
        out.push(NodeCheck {
            node: e.name.clone(),
            reboot,
            evict: plan.evict.iter().map(|p| p.to_string()).collect(),
            refused: plan
                .refused
                .iter()
                .map(|(p, r)| json!({"pod": p.to_string(), "reason": r.to_string(), "flag": r.flag()}))
                .collect(),
            skipped: plan
                .skipped
                .iter()
                .map(|(p, r)| json!({"pod": p.to_string(), "reason": r.to_string()}))
                .collect(),
            never_allowing_pdbs: plan
                .never_allowing_pdbs()
                .iter()
                .map(|p| {
                    format!(
                        "{}/{} ({})",
                        p.namespace,
                        p.name,
                        p.never_allows.clone().unwrap_or_default()
                    )
                })
                .collect(),
            blocking_pdbs: plan
                .blocking_pdbs()
                .iter()
                .map(|p| format!("{}/{}", p.namespace, p.name))
                .collect(),
            nowhere_to_go,
        });
    }
    Ok(out)
}

/// Pods that will refuse to drain and PDBs that can never allow: refuse the run now.
pub fn certain_failures(checks: &[NodeCheck]) -> Option<Refusal> {
    let mut problems = vec![];
    let mut flags: Vec<&str> = vec![];
    for c in checks.iter().filter(|c| c.reboot == "yes") {
        for r in &c.refused {
            problems.push(format!(
                "node {}: pod {} {} (needs {})",
                c.node,
                r["pod"].as_str().unwrap_or(""),
                r["reason"].as_str().unwrap_or(""),
                r["flag"].as_str().unwrap_or("")
            ));
            if let Some(f) = r["flag"].as_str() {
                if !flags.contains(&f) {
                    flags.push(f);
                }
            }
        }
        for p in &c.never_allowing_pdbs {
            problems.push(format!(
                "node {}: PodDisruptionBudget {p} can never allow the drain",
                c.node
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
    Some(Refusal {
        message: format!(
            "these drains would certainly fail: {}; nothing was changed",
            problems.join("; ")
        ),
        hint: hint.join("; "),
    })
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
        .filter(|c| c.reboot != "no" && !c.nowhere_to_go.is_empty())
        .map(|c| {
            let text = nowhere_to_go_text(&c.node, &c.nowhere_to_go);
            if c.reboot == "yes" {
                text
            } else {
                format!("if it needs a reboot after the upgrade, {text}")
            }
        })
        .collect();
    if problems.is_empty() {
        return None;
    }
    Some(Refusal {
        message: format!("{}; nothing was changed", problems.join("; ")),
        hint: PENDING_PODS_HINT.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube::drain::PodRef;
    use crate::kube::schedule::{Constraint, Nowhere};

    fn check(node: &str, reboot: &'static str, stranded: Vec<Stranded>) -> NodeCheck {
        NodeCheck {
            node: node.into(),
            reboot,
            evict: stranded.iter().map(|s| s.pod.to_string()).collect(),
            refused: vec![],
            skipped: vec![],
            never_allowing_pdbs: vec![],
            blocking_pdbs: vec![],
            nowhere_to_go: stranded,
        }
    }

    fn session_cache() -> Stranded {
        Stranded {
            pod: PodRef {
                namespace: "shop".into(),
                name: "session-cache-7c9".into(),
                uid: "u".into(),
            },
            why: Nowhere::NoneMatches(vec![Constraint::NodeSelector(
                [("agentpool".to_string(), "user".to_string())].into(),
            )]),
        }
    }

    #[test]
    fn a_drain_that_would_strand_a_pod_refuses_the_run_naming_it_and_why() {
        let checks = [
            check("user-1", "yes", vec![session_cache()]),
            check("user-2", "yes", vec![]),
        ];
        let r = pending_pods(&checks).expect("refused");
        assert_eq!(
            r.message,
            "draining node user-1 would leave 1 pod(s) with nowhere to go (Pending until it is back): shop/session-cache-7c9 (no other schedulable Ready node matches nodeSelector agentpool=user); nothing was changed"
        );
        assert!(r.hint.contains("--allow-pending-pods"), "{}", r.hint);
        assert!(certain_failures(&checks).is_none(), "not a drain certain to fail");
    }

    #[test]
    fn a_node_that_may_reboot_is_refused_with_the_condition_said() {
        let r = pending_pods(&[check("user-1", "maybe", vec![session_cache()])]).expect("refused");
        assert!(
            r.message
                .starts_with("if it needs a reboot after the upgrade, draining node user-1"),
            "{}",
            r.message
        );
    }

    #[test]
    fn nodes_that_are_not_drained_or_strand_nothing_refuse_nothing() {
        assert!(pending_pods(&[check("user-1", "no", vec![session_cache()])]).is_none());
        assert!(pending_pods(&[check("user-1", "yes", vec![])]).is_none());
    }
}
