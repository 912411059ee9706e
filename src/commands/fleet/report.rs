//! `aks-patch fleet report`: one row a cluster from its last scan and its last run, read
//! from the state directory (no SSH, no Kubernetes API: only the selection asks Azure).

use super::super::{scans, Outcome};
use crate::cli::FleetReportArgs;
use crate::fleet::ClusterRef;
use crate::output::{Exit, Reporter};
use crate::rollout::journal::{self, Journal, NodeState, RunRecord};
use crate::settings::Settings;
use serde::Serialize;
use std::collections::BTreeMap;

/// One row of the fleet report (`-o json` field names are stable).
#[derive(Debug, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ReportRow {
    pub cluster: String,
    pub resource_group: String,
    pub subscription: String,
    /// Nodes with a recorded scan.
    pub nodes_scanned: Option<usize>,
    pub reboot_required: Option<usize>,
    pub pending_updates: Option<usize>,
    /// When the newest node scan was taken.
    pub last_scan: Option<String>,
    /// The last run's status (`succeeded`, `failed`, `interrupted`, `running`).
    pub last_run: Option<String>,
    pub last_run_id: Option<String>,
    /// Nodes the last run patched.
    pub patched: Option<usize>,
    /// When the last run that patched a node ended.
    pub last_patched: Option<String>,
}

pub fn row(c: &ClusterRef, scan: &BTreeMap<String, scans::NodeScan>, last: Option<&RunRecord>) -> ReportRow {
    let scanned = !scan.is_empty();
    ReportRow {
        cluster: c.name.clone(),
        resource_group: c.resource_group.clone(),
        subscription: c.subscription.clone(),
        nodes_scanned: scanned.then_some(scan.len()),
        reboot_required: scanned.then(|| scan.values().filter(|n| n.reboot_required).count()),
        pending_updates: scanned.then(|| scan.values().map(|n| n.pending_updates).sum()),
        last_scan: scan.values().map(|n| n.scanned_at.clone()).max(),
        last_run: last.map(|r| journal::enum_text(&r.status)),
        last_run_id: last.map(|r| r.run_id.clone()),
        patched: last.map(|r| r.nodes.iter().filter(|n| n.state == NodeState::Done).count()),
        last_patched: last
            .filter(|r| r.nodes.iter().any(|n| n.state == NodeState::Done))
            .and_then(|r| r.finished_at)
            .map(|t| journal::stamp(&t)),
    }
}

pub async fn run(args: FleetReportArgs, settings: &Settings, reporter: &Reporter) -> anyhow::Result<Outcome> {
    let arm = super::arm_client(&args.select, settings)?;
    let clusters = super::choose(&args.select, &arm, settings, reporter).await?;
    let runs = Journal::new(settings.state_dir.join("runs"));
    let rows: Vec<ReportRow> = clusters
        .iter()
        .map(|c| {
            let key = c.record_ref().key;
            let scan = scans::load(&settings.state_dir, &key);
            let last = runs.latest(&key).ok().flatten();
            row(c, &scan, last.as_ref())
        })
        .collect();
    let reboot: usize = rows.iter().filter_map(|r| r.reboot_required).sum();
    let never = rows.iter().filter(|r| r.nodes_scanned.is_none()).count();
    let mut summary = format!(
        "{} cluster(s); {reboot} node(s) needed a reboot at their last scan",
        rows.len()
    );
    if never > 0 {
        summary.push_str(&format!(
            "; {never} cluster(s) never scanned from here (`aks-patch fleet scan` with the same selection)"
        ));
    }
    Ok(Outcome {
        value: serde_json::to_value(&rows)?,
        table: Some(crate::output::fleet::report_table()),
        summary: Some(summary),
        exit: Exit::Ok,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::azure::ClusterId;

    #[test]
    fn a_cluster_never_scanned_nor_patched_is_a_row_of_dashes() {
        let c = ClusterRef::new(ClusterId::new("s1", "rg", "c1"));
        let r = row(&c, &BTreeMap::new(), None);
        assert_eq!((r.nodes_scanned, r.reboot_required, r.last_run), (None, None, None));
        let scan = BTreeMap::from([
            (
                "n1".to_string(),
                scans::NodeScan {
                    scanned_at: "2026-12-07T01:00:00Z".into(),
                    reboot_required: true,
                    pending_updates: 3,
                    ..scans::NodeScan::default()
                },
            ),
            (
                "n2".to_string(),
                scans::NodeScan {
                    scanned_at: "2026-12-07T02:00:00Z".into(),
                    pending_updates: 2,
                    ..scans::NodeScan::default()
                },
            ),
        ]);
        let r = row(&c, &scan, None);
        assert_eq!(
            (
                r.nodes_scanned,
                r.reboot_required,
                r.pending_updates,
                r.last_scan.as_deref()
            ),
            (Some(2), Some(1), Some(5), Some("2026-12-07T02:00:00Z"))
        );
    }
}
