//! The after-report of a run: the table printed when it ends, and the nodes it left
//! cordoned (always named).

use super::journal::{NodeState, RunRecord};
use crate::kube::NodeRow;
use serde_json::json;

/// The after-table. `now`: the nodes as listed after the run (`None`: the list failed, so
/// every status is `<unknown>`, never `<gone>`).
pub fn after_rows(rec: &RunRecord, now: Option<&[NodeRow]>) -> Vec<serde_json::Value> {
    rec.nodes
        .iter()
        .map(|n| {
            let r = now.and_then(|rows| rows.iter().find(|r| r.name == n.name));
            let status = match (now, r) {
                (None, _) => "<unknown>".to_string(),
                (Some(_), Some(r)) => r.status.clone(),
                (Some(_), None) => "<gone>".to_string(),
            };
            let kernel_after = n.kernel_after.clone().or_else(|| r.map(|r| r.kernel_version.clone()));
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

/// Nodes this run (or the one it resumed) took out and did not put back: `(name, sure)`,
/// `sure` false when the cluster could not be read to confirm.
pub fn left_cordoned(rec: &RunRecord, now: Option<&[NodeRow]>) -> Vec<(String, bool)> {
    rec.nodes
        .iter()
        .filter(|n| n.in_hand && !n.was_cordoned)
        .filter_map(|n| match now {
            None => Some((n.name.clone(), false)),
            Some(rows) => rows
                .iter()
                .find(|r| r.name == n.name)
                .filter(|r| r.unschedulable)
                .map(|_| (n.name.clone(), true)),
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
