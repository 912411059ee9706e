//! What past runs' records say about the time a node is out.

use crate::rollout::journal::{NodeRecord, StepName};
use std::time::Duration;

/// The median time a node was out (cordon to uncordon) among the rebooted `nodes` of past
/// runs' records, if any.
pub fn median_node_time<'a>(nodes: impl IntoIterator<Item = &'a NodeRecord>) -> Option<Duration> {
    let mut times: Vec<i64> = nodes
        .into_iter()
        .filter(|n| n.rebooted)
        .filter_map(|n| {
            let start = n.steps.iter().find(|s| s.name == StepName::Cordon)?.started_at;
            let end = n
                .steps
                .iter()
                .rev()
                .find(|s| s.name == StepName::Uncordon)?
                .finished_at?;
            Some(end.duration_since(start).as_secs()).filter(|s| *s > 0)
        })
        .collect();
    if times.is_empty() {
        return None;
    }
    times.sort_unstable();
    Some(Duration::from_secs(times[times.len() / 2] as u64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollout::journal::{Step, StepOutcome, Time};

    fn step(name: StepName, at: &str, took_secs: i64) -> Step {
        let started_at: Time = at.parse().unwrap();
        Step {
            name,
            started_at,
            finished_at: Some(started_at + jiff::SignedDuration::from_secs(took_secs)),
            outcome: StepOutcome::Ok,
            detail: String::new(),
        }
    }

    /// A node cordoned at 10:00 and uncordoned `out_secs` later (the uncordon taking 1 s).
    fn node(rebooted: bool, out_secs: i64) -> NodeRecord {
        let mut n = NodeRecord::new("n", "pool");
        n.rebooted = rebooted;
        let back = "2026-12-01T10:00:00Z".parse::<Time>().unwrap() + jiff::SignedDuration::from_secs(out_secs - 1);
        n.steps = vec![
            step(StepName::Cordon, "2026-12-01T10:00:00Z", 1),
            step(StepName::Uncordon, &back.to_string(), 1),
        ];
        n
    }

    #[test]
    fn the_time_a_node_is_out_is_the_median_of_the_rebooted_nodes() {
        let nodes = [node(true, 600), node(true, 120), node(false, 5000), node(true, 300)];
        assert_eq!(median_node_time(&nodes), Some(Duration::from_secs(300)));
        assert_eq!(median_node_time(&nodes[2..3]), None, "not rebooted: not counted");
        assert_eq!(median_node_time(&[]), None);
        // A clock that went backwards says nothing.
        assert_eq!(median_node_time(&[node(true, -100)]), None);
    }
}
