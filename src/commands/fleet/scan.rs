//! `aks-patch fleet scan`: `scan` on every chosen cluster at once (up to `--max-clusters`),
//! one row a cluster; a cluster that fails is a row with its error.

use super::super::Outcome;
use crate::cli::{ClusterArgs, FailOn, FleetScanTarget, ScanArgs};
use crate::fleet::scan::{scan_all, ClusterScan, ClusterScanned, FleetScanRow, NodeSummary};
use crate::fleet::ClusterRef;
use crate::output::{Exit, Reporter};
use crate::settings::Settings;
use async_trait::async_trait;

/// Each cluster scanned by `scan` itself, with its own reporter.
struct Scanner<'a> {
    template: ScanArgs<FleetScanTarget>,
    settings: &'a Settings,
    reporter: &'a Reporter,
}

#[async_trait]
impl ClusterScan for Scanner<'_> {
    async fn scan(&self, c: &ClusterRef) -> Result<ClusterScanned, String> {
        let cluster = ClusterArgs::arm(
            &c.subscription,
            &c.resource_group,
            &c.name,
            &self.template.cluster.select,
        );
        let mut args = self.template.clone().for_cluster(cluster);
        // The fleet decides the exit code; a cluster's own pushes and record stay as scan's.
        args.fail_on = None;
        let reporter = self.reporter.for_cluster(&c.to_string());
        match crate::commands::scan::run(args, self.settings, &reporter).await {
            Ok(outcome) => {
                if let Some(s) = &outcome.summary {
                    reporter.verbose(s);
                }
                Ok(scanned(outcome.value))
            }
            Err(e) => Err(super::one_line(&e)),
        }
    }
}

/// What the fleet counts of `scan -o json`'s rows.
fn scanned(rows: serde_json::Value) -> ClusterScanned {
    let nodes = rows
        .as_array()
        .map(|rows| {
            rows.iter()
                .map(|r| NodeSummary {
                    windows: r["osType"].as_str() == Some("windows"),
                    reboot_required: r["rebootRequired"].as_bool(),
                    pending_updates: r["pendingUpdates"].as_u64().map(|n| n as usize),
                    security_updates: r["securityUpdates"].as_u64().map(|n| n as usize),
                    error: r["error"]
                        .as_str()
                        .map(|e| format!("{}: {e}", r["name"].as_str().unwrap_or("?"))),
                })
                .collect()
        })
        .unwrap_or_default();
    ClusterScanned { nodes, detail: rows }
}

pub async fn run(args: ScanArgs<FleetScanTarget>, settings: &Settings, reporter: &Reporter) -> anyhow::Result<Outcome> {
    let arm = super::arm_client(&args.cluster.select, settings)?;
    let clusters = super::choose(&args.cluster.select, &arm, settings, reporter).await?;
    let max = args.cluster.max_clusters as usize;
    let fail_on = args.fail_on;
    let table = crate::commands::shows_table(&args.global);
    reporter.info(&format!(
        "scanning {} cluster(s), {} at once",
        clusters.len(),
        max.min(clusters.len())
    ));
    let scanner = Scanner {
        template: args,
        settings,
        reporter,
    };
    let told = |row: &FleetScanRow| match &row.error {
        Some(e) if row.linux_nodes.is_none() => reporter.warn(&format!("{}/{}: {e}", row.resource_group, row.cluster)),
        _ => reporter.verbose(&format!("{}/{}: scanned", row.resource_group, row.cluster)),
    };
    let rows = scan_all(&clusters, max, &scanner, &told).await;
    let failed = rows.iter().filter(|r| r.failed()).count();
    let linux: usize = rows.iter().filter_map(|r| r.linux_nodes).sum();
    let reboot: usize = rows.iter().filter_map(|r| r.reboot_required).sum();
    let pending_clusters = rows.iter().filter(|r| r.pending_updates.unwrap_or(0) > 0).count();
    let reboot_clusters = rows.iter().filter(|r| r.reboot_required.unwrap_or(0) > 0).count();
    let mut summary = format!(
        "{} cluster(s): {reboot} of {linux} Linux nodes need a reboot (in {reboot_clusters} cluster(s)); {pending_clusters} cluster(s) have pending updates",
        rows.len()
    );
    if failed > 0 {
        summary.push_str(&format!("; {failed} cluster(s) could not be scanned whole (see ERROR)"));
    }
    let exit = if failed > 0 {
        Exit::NodesFailed
    } else {
        match fail_on {
            Some(FailOn::RebootRequired) if reboot > 0 => Exit::FailOn,
            Some(FailOn::Pending) if pending_clusters > 0 || reboot > 0 => Exit::FailOn,
            _ => Exit::Ok,
        }
    };
    let mut value = serde_json::to_value(&rows)?;
    if table {
        // The table shows the counts; the per-node detail is for -o json.
        if let Some(rows) = value.as_array_mut() {
            for r in rows {
                if let Some(o) = r.as_object_mut() {
                    o.remove("nodes");
                }
            }
        }
    }
    Ok(Outcome {
        value,
        table: Some(crate::output::fleet::scan_table()),
        summary: Some(summary),
        exit,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fleet_counts_what_scan_reports_per_node() {
        let rows = serde_json::json!([
            {"name": "n1", "osType": "linux", "rebootRequired": true, "pendingUpdates": 6, "securityUpdates": 4, "error": null},
            {"name": "n2", "osType": "linux", "rebootRequired": null, "pendingUpdates": null, "securityUpdates": null, "error": "ssh: refused"},
            {"name": "w1", "osType": "windows", "rebootRequired": null, "pendingUpdates": null, "error": null},
        ]);
        let s = scanned(rows.clone());
        assert_eq!(s.nodes.len(), 3);
        assert!(s.nodes[2].windows);
        assert_eq!(s.nodes[0].pending_updates, Some(6));
        assert_eq!(s.nodes[1].error.as_deref(), Some("n2: ssh: refused"));
        assert_eq!(s.detail, rows);
    }
}
