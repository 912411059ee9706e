//! What `apply` shows: the plan table, the dry run's table and JSON, the after-table.

use super::super::scan::ScanRow;
use super::super::Outcome;
use super::prepare::Prepared;
use crate::cli::ApplyArgs;
use crate::commands::context::ClusterContext;
use crate::kube::NodeInfo;
use crate::output::{Column, Exit, Reporter, TableSpec};
use crate::rollout::gate;
use crate::rollout::journal::{NodeState, RunRecord};
use crate::rollout::plan::PlanEntry;
use crate::rollout::preflight::{self, WouldReboot};
use serde_json::json;

/// What `apply` would do with what the pre-flight found: a line for stderr, a summary tail.
pub(super) struct DryVerdict {
    pub line: String,
    pub summary: &'static str,
}

pub(super) fn dry_run_outcome(
    ctx: &ClusterContext,
    args: &ApplyArgs,
    prepared: &Prepared,
    verdict: Option<DryVerdict>,
    reporter: &Reporter,
) -> Outcome {
    let (plan_value, checks, gate_now, kured) = (
        prepared.plan_value.clone(),
        &prepared.checks,
        &prepared.gate_now,
        prepared.kured.as_deref(),
    );
    let gate_text = if gate_now.is_empty() {
        "open: no other node is out".to_string()
    } else {
        format!("closed: {}", gate::blockers_text(gate_now))
    };
    let refusals = preflight::certain_failures(checks);
    let rows: Vec<serde_json::Value> = plan_value
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|mut p| {
            let name = p["name"].as_str().unwrap_or("").to_string();
            let c = checks.iter().find(|c| c.node == name);
            p["wouldReboot"] = match c {
                Some(c) => json!(c.reboot),
                None if p["action"] == "patch" => json!(WouldReboot::No),
                None => json!("-"),
            };
            p["evict"] = json!(c.map(|c| c.evict.len()));
            p["refused"] = json!(c
                .map(|c| c
                    .refused
                    .iter()
                    .map(|r| format!("{} ({})", r.pod, r.reason.flag()))
                    .collect::<Vec<_>>()
                    .join(", "))
                .filter(|s| !s.is_empty()));
            p["nowhereToGo"] = json!(c
                .map(|c| c
                    .nowhere_to_go
                    .iter()
                    .map(|s| s.pod.to_string())
                    .collect::<Vec<_>>()
                    .join(", "))
                .filter(|s| !s.is_empty()));
            p["pdbs"] = json!(c
                .map(|c| {
                    let mut v: Vec<String> = c
                        .never_allowing_pdbs
                        .iter()
                        .map(|p| format!("never: {}", preflight::drains::never_allowing_text(p)))
                        .collect();
                    v.extend(c.blocking_pdb_names().iter().map(|p| format!("blocks now: {p}")));
                    v.join(", ")
                })
                .filter(|s| !s.is_empty()));
            p
        })
        .collect();
    reporter.info(&format!("health gate: {gate_text}"));
    if let Some(v) = &verdict {
        reporter.warn(&v.line);
    }
    let value = if crate::commands::shows_table(&args.global) {
        serde_json::Value::Array(rows)
    } else {
        json!({
            "dryRun": true,
            "cluster": ctx.cluster,
            "plan": rows,
            "drains": checks,
            "healthGate": {"open": gate_now.is_empty(), "blockers": gate_now},
            "kuredLockHolder": kured,
            "wouldRefuse": refusals.as_ref().map(crate::output::refusal::message),
            "verdict": verdict.as_ref().map(|v| v.line.clone()),
        })
    };
    Outcome {
        value,
        table: Some(TableSpec::new(vec![
            Column::new("NAME", "name"),
            Column::new("POOL", "pool"),
            Column::new("KERNEL-VERSION", "kernel").placeholder("<unknown>"),
            Column::new("PENDING", "pendingUpdates").placeholder("-"),
            Column::new("ACTION", "action"),
            Column::new("REBOOT", "wouldReboot"),
            Column::new("EVICT", "evict").placeholder("-"),
            Column::new("REFUSED", "refused").placeholder(""),
            Column::new("PDBS", "pdbs").placeholder(""),
            Column::new("NOWHERE-TO-GO", "nowhereToGo").placeholder(""),
            Column::new("REASON", "reason").placeholder(""),
        ])),
        summary: Some(format!(
            "dry run: nothing was changed; health gate {gate_text}{}",
            verdict.as_ref().map(|v| v.summary).unwrap_or_default()
        )),
        exit: Exit::Ok,
    }
}

pub(super) fn plan_table() -> TableSpec {
    TableSpec::new(vec![
        Column::new("NAME", "name"),
        Column::new("POOL", "pool"),
        Column::new("STATUS", "status"),
        Column::new("KERNEL-VERSION", "kernel").placeholder("<unknown>"),
        Column::new("PENDING", "pendingUpdates").placeholder("-"),
        Column::new("SECURITY", "security").placeholder("-"),
        Column::new("REBOOT-NEEDED", "rebootRequired").placeholder("-"),
        Column::new("ACTION", "action"),
        Column::new("REASON", "reason").placeholder(""),
    ])
}

pub(super) fn plan_value(entries: &[PlanEntry], before: &[ScanRow], rows: &[NodeInfo]) -> serde_json::Value {
    serde_json::Value::Array(
        entries
            .iter()
            .map(|e| {
                let b = before.iter().find(|b| b.name == e.name);
                let r = rows.iter().find(|r| r.name == e.name);
                json!({
                    "name": e.name,
                    "pool": e.pool,
                    "status": b.map(|b| b.status.clone()).or_else(|| r.map(crate::output::nodes::status)),
                    "kernel": b.and_then(|b| b.running_kernel.clone().or_else(|| Some(b.kernel_version.clone()))).or_else(|| r.map(|r| r.kernel_version.clone().unwrap_or_else(|| "<unknown>".into()))),
                    "pendingUpdates": b.and_then(|b| b.pending_updates),
                    "securityUpdates": b.and_then(|b| b.security_updates),
                    "security": b.and_then(|b| b.security.clone()),
                    "rebootRequired": b.and_then(|b| b.reboot_required),
                    "action": e.action,
                    "reason": e.reason.clone().or_else(|| b.and_then(|b| b.error.clone())),
                })
            })
            .collect(),
    )
}

pub(super) fn after_table() -> TableSpec {
    TableSpec::new(vec![
        Column::new("NAME", "name"),
        Column::new("STATUS", "status"),
        Column::new("KERNEL-BEFORE", "kernelBefore").placeholder("<unknown>"),
        Column::new("KERNEL-AFTER", "kernelAfter").placeholder("<unknown>"),
        Column::new("PACKAGES", "packagesUpgraded").placeholder("0"),
        Column::new("REBOOTED", "rebooted"),
        Column::new("RESULT", "result"),
        Column::new("DETAIL", "detail").placeholder(""),
    ])
}

/// The after-table. `now`: the nodes as listed after the run (`None`: the list failed, so
/// every status is `<unknown>`, never `<gone>`).
pub(super) fn after_rows(rec: &RunRecord, now: Option<&[NodeInfo]>) -> Vec<serde_json::Value> {
    rec.nodes
        .iter()
        .map(|n| {
            let r = now.and_then(|rows| rows.iter().find(|r| r.name == n.name));
            let status = match (now, r) {
                (None, _) => "<unknown>".to_string(),
                (Some(_), Some(r)) => crate::output::nodes::status(r),
                (Some(_), None) => "<gone>".to_string(),
            };
            let kernel_after = n.kernel_after.clone().or_else(|| r.and_then(|r| r.kernel_version.clone()));
            json!({
                "name": n.name,
                "status": status,
                "unschedulable": r.map(|r| r.unschedulable),
                "kernelBefore": n.kernel_before,
                "kernelAfter": if matches!(n.state, NodeState::Skipped | NodeState::Gone) { None } else { kernel_after },
                "packagesUpgraded": n.packages_upgraded.len(),
                "rebooted": n.rebooted,
                "result": match n.state {
                    NodeState::Done => "patched",
                    NodeState::Skipped => "skipped",
                    NodeState::Gone => "gone",
                    NodeState::Failed => "FAILED",
                    // Rebooted and put back, never checked: not patched as far as we know.
                    NodeState::Unproven => "UNPROVEN",
                    NodeState::Pending => "not started",
                    _ => "stopped mid-way",
                },
                "detail": n.error.clone().or_else(|| n.skip_reason.clone()),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unproven_node_is_never_shown_patched() {
        // A record as written (older records still read).
        let rec: RunRecord = serde_json::from_value(json!({
            "runId": "r",
            "cluster": {"name": "ctx", "key": "kubeconfig_ctx"},
            "status": "failed",
            "startedAt": "2026-12-06T10:00:00.000Z",
            "holder": "me@host pid 1",
            "options": {"upgradeMode": "all", "reboot": "if-required", "deleteEmptydirData": false, "force": false,
                        "gracePeriod": null, "drainTimeout": 600, "rebootTimeout": 900, "soak": 0},
            "nodes": [{"name": "n0", "pool": "p", "state": "unproven", "rebooted": true,
                       "error": "the check after the reboot could not be made"}]
        }))
        .unwrap();
        let rows = after_rows(&rec, None);
        assert_eq!(rows[0]["result"], "UNPROVEN");
        assert_eq!(rows[0]["detail"], "the check after the reboot could not be made");
        let metrics = crate::metrics::exposition(&crate::metrics::run_families(&rec), &[]);
        assert!(metrics.contains(r#"result="unproven""#), "{metrics}");
        assert!(!metrics.contains(r#"result="done""#), "{metrics}");
    }
}
