//! Pre-flight: what will certainly fail is found before the lock and before any change.
//! For every node that will (or may) reboot: the pods that will refuse to drain and the
//! PodDisruptionBudgets that can never allow a disruption.

use super::journal::{NodeState, RebootPolicy};
use super::plan::PlanEntry;
use crate::commands::scan::ScanRow;
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
}

pub async fn drains(
    client: &::kube::Client,
    entries: &[PlanEntry],
    before: &BTreeMap<String, ScanRow>,
    opts: &DrainOptions,
    policy: RebootPolicy,
    resume_states: &BTreeMap<String, NodeState>,
) -> Result<Vec<NodeCheck>, (String, KubeError)> {
    let mut out = vec![];
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
