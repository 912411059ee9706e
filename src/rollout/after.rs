//! The end of a run: the nodes it left cordoned (always named). The after-table in words is
//! the command's (`commands::apply::view`).

use super::journal::RunRecord;
use crate::kube::NodeInfo;

/// Nodes this run (or the one it resumed) took out and did not put back: `(name, sure)`,
/// `sure` false when the cluster could not be read to confirm.
pub fn left_cordoned(rec: &RunRecord, now: Option<&[NodeInfo]>) -> Vec<(String, bool)> {
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
