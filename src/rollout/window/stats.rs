//! What past runs' records say about the time a node is out.

use crate::rollout::journal::{RunRecord, StepName};
use std::time::Duration;

/// The median time a node was out (cordon to uncordon) in past runs' records, if any.
pub fn median_node_time(records: &[RunRecord]) -> Option<Duration> {
    let mut times: Vec<i64> = records
        .iter()
        .flat_map(|r| r.nodes.iter())
        .filter(|n| n.rebooted)
        .filter_map(|n| {
            let start = n.steps.iter().find(|s| s.name == StepName::Cordon)?.started_at;
            let end = n
                .steps
                .iter()
                .rev()
                .find(|s| s.name == StepName::Uncordon)?
                .finished_at?;
            Some((end - start).num_seconds()).filter(|s| *s > 0)
        })
        .collect();
    if times.is_empty() {
        return None;
    }
    times.sort_unstable();
    Some(Duration::from_secs(times[times.len() / 2] as u64))
}
