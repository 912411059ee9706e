//! `fleet scan`: every chosen cluster scanned at once (up to `--max-clusters`), each through
//! the [`ClusterScan`] port (which `commands` implements with `scan` itself), summed up in one
//! row a cluster. A cluster that fails is a row with its error, never the end of the scan.

use super::ClusterRef;
use async_trait::async_trait;
use futures::StreamExt;
use serde::Serialize;

/// One node as the fleet summary counts it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NodeSummary {
    pub windows: bool,
    pub reboot_required: Option<bool>,
    pub pending_updates: Option<usize>,
    /// `None` where the OS classifies no update as security (Azure Linux).
    pub security_updates: Option<usize>,
    /// The node could not be probed.
    pub error: Option<String>,
}

/// A cluster's scan: the nodes counted, and their detail as `scan -o json` gives it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClusterScanned {
    pub nodes: Vec<NodeSummary>,
    pub detail: serde_json::Value,
}

/// Scans one cluster.
#[async_trait]
pub trait ClusterScan: Send + Sync {
    /// The cluster's nodes, or why the cluster could not be scanned (in words).
    async fn scan(&self, cluster: &ClusterRef) -> Result<ClusterScanned, String>;
}

/// One row of the fleet scan (`-o json` field names are stable).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FleetScanRow {
    pub cluster: String,
    pub resource_group: String,
    pub subscription: String,
    pub linux_nodes: Option<usize>,
    pub reboot_required: Option<usize>,
    pub pending_updates: Option<usize>,
    pub security_updates: Option<usize>,
    pub windows_nodes: Option<usize>,
    /// Nodes that could not be probed.
    pub failed_nodes: Option<usize>,
    /// Why the cluster could not be scanned, or the first node's error.
    pub error: Option<String>,
    /// Each node, as `scan -o json` shows it.
    pub nodes: serde_json::Value,
}

impl FleetScanRow {
    pub fn of(cluster: &ClusterRef, scanned: Result<ClusterScanned, String>) -> FleetScanRow {
        let mut row = FleetScanRow {
            cluster: cluster.name.clone(),
            resource_group: cluster.resource_group.clone(),
            subscription: cluster.subscription.clone(),
            linux_nodes: None,
            reboot_required: None,
            pending_updates: None,
            security_updates: None,
            windows_nodes: None,
            failed_nodes: None,
            error: None,
            nodes: serde_json::Value::Array(vec![]),
        };
        match scanned {
            Err(e) => row.error = Some(e),
            Ok(s) => {
                let linux: Vec<&NodeSummary> = s.nodes.iter().filter(|n| !n.windows).collect();
                row.linux_nodes = Some(linux.len());
                row.windows_nodes = Some(s.nodes.len() - linux.len());
                row.reboot_required = Some(linux.iter().filter(|n| n.reboot_required == Some(true)).count());
                row.pending_updates = Some(linux.iter().filter_map(|n| n.pending_updates).sum());
                row.security_updates = Some(linux.iter().filter_map(|n| n.security_updates).sum());
                let failed: Vec<&&NodeSummary> = linux.iter().filter(|n| n.error.is_some()).collect();
                row.failed_nodes = Some(failed.len());
                row.error = failed.first().and_then(|n| n.error.clone()).map(|e| {
                    if failed.len() > 1 {
                        format!("{} node(s) failed; first: {e}", failed.len())
                    } else {
                        e
                    }
                });
                row.nodes = s.detail;
            }
        }
        row
    }

    /// The cluster or one of its nodes failed.
    pub fn failed(&self) -> bool {
        self.error.is_some()
    }
}

/// Scan every cluster, `max_clusters` at once; the rows in the clusters' order. `done` is told
/// each row as it comes.
pub async fn scan_all(
    clusters: &[ClusterRef],
    max_clusters: usize,
    port: &dyn ClusterScan,
    done: &(dyn Fn(&FleetScanRow) + Send + Sync),
) -> Vec<FleetScanRow> {
    futures::stream::iter(clusters)
        .map(|c| async move {
            let row = FleetScanRow::of(c, port.scan(c).await);
            done(&row);
            row
        })
        .buffered(max_clusters.max(1))
        .collect()
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::azure::ClusterId;
    use std::sync::Mutex;
    use std::time::Duration;

    struct Fake {
        running: Mutex<(usize, usize)>,
    }

    fn linux(reboot: bool, pending: usize, security: Option<usize>) -> NodeSummary {
        NodeSummary {
            windows: false,
            reboot_required: Some(reboot),
            pending_updates: Some(pending),
            security_updates: security,
            error: None,
        }
    }

    #[async_trait]
    impl ClusterScan for Fake {
        async fn scan(&self, c: &ClusterRef) -> Result<ClusterScanned, String> {
            {
                let mut r = self.running.lock().unwrap();
                r.0 += 1;
                r.1 = r.1.max(r.0);
            }
            tokio::time::sleep(Duration::from_secs(if c.name == "slow" { 30 } else { 5 })).await;
            self.running.lock().unwrap().0 -= 1;
            match c.name.as_str() {
                "down" => Err("cannot reach the API server".into()),
                _ => Ok(ClusterScanned {
                    nodes: vec![
                        linux(true, 6, Some(4)),
                        linux(false, 3, None),
                        NodeSummary {
                            windows: true,
                            ..NodeSummary::default()
                        },
                        NodeSummary {
                            error: Some("ssh: connection refused".into()),
                            ..NodeSummary::default()
                        },
                    ],
                    detail: serde_json::json!([{"name": "n1"}]),
                }),
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_cluster_that_fails_is_a_row_with_its_error_and_the_others_are_counted() {
        let names = ["slow", "down", "c3", "c4"];
        let clusters: Vec<ClusterRef> = names
            .iter()
            .map(|n| ClusterRef::new(ClusterId::new("s1", "rg", *n)))
            .collect();
        let fake = Fake {
            running: Mutex::new((0, 0)),
        };
        let seen = Mutex::new(vec![]);
        let rows = scan_all(&clusters, 3, &fake, &|r: &FleetScanRow| {
            seen.lock().unwrap().push(r.cluster.clone())
        })
        .await;
        assert_eq!(fake.running.lock().unwrap().1, 3, "at most --max-clusters at once");
        let got: Vec<&str> = rows.iter().map(|r| r.cluster.as_str()).collect();
        assert_eq!(got, names, "rows in the clusters' order");
        let down = &rows[1];
        assert_eq!(down.error.as_deref(), Some("cannot reach the API server"));
        assert_eq!(down.linux_nodes, None);
        let ok = &rows[0];
        assert_eq!(
            (
                ok.linux_nodes,
                ok.windows_nodes,
                ok.reboot_required,
                ok.pending_updates,
                ok.security_updates
            ),
            (Some(3), Some(1), Some(1), Some(9), Some(4))
        );
        assert_eq!(ok.failed_nodes, Some(1));
        assert_eq!(ok.error.as_deref(), Some("ssh: connection refused"));
        assert_eq!(ok.nodes, serde_json::json!([{"name": "n1"}]));
        assert_eq!(seen.lock().unwrap().len(), 4);
    }
}
