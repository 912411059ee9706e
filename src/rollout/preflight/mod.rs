//! Pre-flight: what will certainly fail is found before the lock and before any change, and
//! refused then ([`Refusal`](super::refusal::Refusal)), with nothing changed.
//! - [`nodes`]: a selection that chose nothing, a node that cannot be probed, Azure Linux
//!   nodes the options cannot patch;
//! - [`drains`]: for every node that will (or may) reboot, the pods that will refuse to
//!   drain, the budgets that can never allow, the pods with nowhere to go;
//! - [`access`]: the permissions the rollout will use;
//! - [`other_run`]: a node out of service under another aks-patch run;
//! - [`verdict`]: what all of it makes of the run.

pub mod access;
pub mod drains;
pub mod nodes;
pub mod other_run;
pub mod verdict;

pub use drains::{
    certain_failures, drains, nowhere_to_go_text, pending_pods, NodeCheck, WouldReboot, PENDING_PODS_HINT,
};
pub use verdict::{verdict, Decision, Findings, Verdict};

#[cfg(test)]
pub(crate) mod fixtures {
    use crate::kube::drain::IN_PROGRESS_ANNOTATION;
    use crate::kube::NodeInfo;
    use crate::node::{PackageManager, Probe};
    use crate::rollout::journal::{NodeRecord, NodeState, RunOptions, RunRecord};
    use crate::rollout::probed::{ProbeResult, ProbedNode};

    /// Node `name` as the API server lists it: Ready or not, marked in progress by a run.
    pub fn node(name: &str, ready: bool, in_progress: Option<&str>) -> NodeInfo {
        let annotations = match in_progress {
            Some(run) => serde_json::json!({ IN_PROGRESS_ANNOTATION: run }),
            None => serde_json::json!({}),
        };
        let node: k8s_openapi::api::core::v1::Node = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "annotations": annotations, "labels": {"agentpool": "user"}},
            "status": {
                "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}],
                "addresses": [{"type": "InternalIP", "address": "10.0.0.4"}],
            },
        }))
        .unwrap();
        NodeInfo::of(&node)
    }

    /// What the probe finds on an Ubuntu node (apt), nothing pending.
    pub fn probe() -> Probe {
        Probe {
            running_kernel: "5.15.0-1070-azure".into(),
            os_id: "ubuntu".into(),
            os_version: "22.04".into(),
            os_pretty_name: None,
            boot_id: None,
            booted_at: None,
            uptime_seconds: None,
            package_manager: PackageManager::Apt,
            pending: vec![],
            reboot_required: false,
            reboot_packages: vec![],
            refreshed: false,
            refresh_error: None,
            unsupported: None,
            end_of_support: None,
            needs_restarting: false,
        }
    }

    pub fn probed(name: &str, result: ProbeResult) -> ProbedNode {
        ProbedNode {
            name: name.into(),
            result,
        }
    }

    /// A run record (id `run`) with these nodes in these states.
    pub fn record(run: &str, nodes: &[(&str, NodeState)]) -> RunRecord {
        let options: RunOptions = serde_json::from_value(serde_json::json!({
            "upgradeMode": "all", "reboot": "if-required", "deleteEmptydirData": false, "force": false,
            "drainTimeout": 600, "rebootTimeout": 900,
        }))
        .unwrap();
        let mut rec: RunRecord = serde_json::from_value(serde_json::json!({
            "schemaVersion": 2, "runId": run, "cluster": {"name": "c", "key": "c"}, "status": "interrupted",
            "startedAt": "2026-01-01T00:00:00Z", "holder": "me@host pid 1", "options": options, "nodes": [],
        }))
        .unwrap();
        rec.nodes = nodes
            .iter()
            .map(|(name, state)| {
                let mut n = NodeRecord::new(name, "user");
                n.state = *state;
                n
            })
            .collect();
        rec
    }
}
