//! Resuming an interrupted run: which run `--resume` continues, its plan (its nodes in its
//! order, from the state they reached; a node deleted since is `gone`, never a halt), what it
//! left out of service, the record the new run starts from, and its options
//! ([`options`]: kept; a flag that says otherwise is refused).

pub mod options;

pub use options::{resume_options, Flag, GivenFlags, ResumeRefusal};

use super::journal::{self, NodeRecord, NodeState, RunRecord, RunStatus};
use super::node_life::finished;
use super::plan::PlanEntry;
use super::probed::{self, ProbedNode};
use crate::kube::NodeInfo;

/// What `--resume` continues, given the cluster's newest run record.
#[derive(Debug, Clone, PartialEq)]
pub enum Resumable {
    /// The newest run did not finish and has nodes left: it is continued.
    Continue(RunRecord),
    /// The newest run succeeded: there is nothing to resume (nothing is touched).
    Succeeded(RunRecord),
    /// There is no run, or the newest one has nothing left to do.
    Nothing,
}

pub fn resumable(latest: Option<RunRecord>) -> Resumable {
    match latest {
        Some(prev) if prev.status == RunStatus::Succeeded => Resumable::Succeeded(prev),
        Some(prev) if prev.unfinished() => Resumable::Continue(prev),
        _ => Resumable::Nothing,
    }
}

/// The runs a resumed run continues: the interrupted run and those it continued. Nodes
/// marked in progress by any of them are this run's to finish.
pub fn chain(prev: Option<&RunRecord>) -> Vec<String> {
    prev.map(|p| {
        let mut v = p.resumed_from.clone();
        v.push(p.run_id.clone());
        v
    })
    .unwrap_or_default()
}

/// The nodes of `rows` marked in progress by one of the runs of `chain`.
pub fn ours_in_cluster(rows: &[NodeInfo], chain: &[String]) -> Vec<String> {
    rows.iter()
        .filter(|r| r.in_progress.as_ref().is_some_and(|run| chain.contains(run)))
        .map(|r| r.name.clone())
        .collect()
}

/// The nodes the interrupted run left out of service (in hand, rebooting or back).
pub fn left_out(prev: Option<&RunRecord>) -> Vec<&str> {
    prev.iter()
        .flat_map(|p| p.nodes.iter())
        .filter(|n| n.left_out())
        .map(|n| n.name.as_str())
        .collect()
}

/// The nodes the interrupted run left out of service that are still in the cluster: the
/// resumed run finishes them first, whatever holds the others.
pub fn left_out_in_cluster<'a>(prev: Option<&'a RunRecord>, rows: &[NodeInfo]) -> Vec<&'a str> {
    left_out(prev)
        .into_iter()
        .filter(|n| rows.iter().any(|r| r.name == *n))
        .collect()
}

/// The nodes the interrupted run left cordoned (and had not found cordoned), which the
/// resumed run uncordons before any other is taken out: places for the pods of the nodes
/// after them.
pub fn coming_back(prev: Option<&RunRecord>) -> Vec<String> {
    prev.iter()
        .flat_map(|p| p.nodes.iter())
        .filter(|n| n.left_out() && !n.was_cordoned)
        .map(|n| n.name.clone())
        .collect()
}

/// The state the interrupted run left node `name` in.
pub fn state_of(prev: Option<&RunRecord>, name: &str) -> Option<NodeState> {
    prev?.nodes.iter().find(|n| n.name == name).map(|n| n.state)
}

/// The plan of a resumed run: its nodes in its order, from the state they reached. A node
/// deleted since is recorded as gone (never a halt).
pub fn resume_plan(prev: &RunRecord, rows: &[NodeInfo]) -> Vec<PlanEntry> {
    prev.nodes
        .iter()
        .map(|n| {
            let gone = !rows.iter().any(|r| r.name == n.name);
            let skip = match n.state {
                NodeState::Skipped => n.skip_reason.clone().or_else(|| Some("skipped".into())),
                NodeState::Done => Some("done in an earlier run".into()),
                NodeState::Gone => n
                    .skip_reason
                    .clone()
                    .or_else(|| Some("the node no longer exists".into())),
                _ if gone => Some("the node no longer exists (deleted from the cluster)".into()),
                _ => None,
            };
            PlanEntry {
                name: n.name.clone(),
                pool: n.pool.clone(),
                action: if skip.is_some() { "skip".into() } else { "patch".into() },
                reason: skip,
                gone: gone && n.state != NodeState::Done,
            }
        })
        .collect()
}

/// The nodes of the record a run starts with: those of its plan, each where the resumed run
/// left it (else pending), gone or skipped as the plan says, with the kernel the probe found
/// before any change.
pub fn starting_nodes(entries: &[PlanEntry], prev: Option<&RunRecord>, probes: &[ProbedNode]) -> Vec<NodeRecord> {
    entries
        .iter()
        .map(|e| {
            let mut n = prev
                .and_then(|p| p.nodes.iter().find(|n| n.name == e.name))
                .cloned()
                .unwrap_or_else(|| NodeRecord::new(&e.name, &e.pool));
            if e.gone {
                n.state = NodeState::Gone;
                n.skip_reason = e.reason.clone();
            } else if !e.patch() && (n.state == NodeState::Pending || !n.in_hand && !finished(n.state)) {
                // Not to patch now (a resumed run's pod runs on it): a node the interrupted
                // run had begun but not taken out of service is left as it is.
                n.state = NodeState::Skipped;
                n.skip_reason = e.reason.clone();
            }
            n.kernel_before = n.kernel_before.or_else(|| {
                probed::of(probes, &e.name)
                    .and_then(ProbedNode::running_kernel)
                    .map(str::to_string)
            });
            n
        })
        .collect()
}

/// The interrupted run's record once run `by` continues it: interrupted, saying by which run.
pub fn superseded(prev: &RunRecord, by: &str) -> RunRecord {
    let mut old = prev.clone();
    old.status = RunStatus::Interrupted;
    old.error.get_or_insert_with(|| format!("resumed by run {by}"));
    old.finished_at.get_or_insert_with(journal::now);
    old
}

#[cfg(test)]
mod tests {
    use super::super::preflight::fixtures::{node, probe, probed, record};
    use super::super::probed::ProbeResult;
    use super::*;

    #[test]
    fn resume_continues_the_newest_run_only_while_it_is_unfinished() {
        let mut prev = record("r1", &[("n1", NodeState::Done), ("n2", NodeState::Failed)]);
        assert!(matches!(resumable(Some(prev.clone())), Resumable::Continue(r) if r.run_id == "r1"));
        prev.status = RunStatus::Succeeded;
        assert!(matches!(resumable(Some(prev.clone())), Resumable::Succeeded(_)));
        prev.status = RunStatus::Failed;
        prev.nodes[1].state = NodeState::Done;
        assert_eq!(resumable(Some(prev)), Resumable::Nothing, "nothing left to do");
        assert_eq!(resumable(None), Resumable::Nothing);
    }

    #[test]
    fn the_nodes_a_resumed_run_left_out_are_its_own_to_finish() {
        let mut prev = record(
            "r2",
            &[
                ("n1", NodeState::Done),
                ("n2", NodeState::Rebooting),
                ("n3", NodeState::Back),
                ("n4", NodeState::Pending),
            ],
        );
        prev.resumed_from = vec!["r1".into()];
        prev.nodes[2].was_cordoned = true;
        assert_eq!(chain(Some(&prev)), ["r1", "r2"]);
        assert_eq!(left_out(Some(&prev)), ["n2", "n3"]);
        assert_eq!(coming_back(Some(&prev)), ["n2"], "n3 was cordoned before: it stays so");
        let rows = [
            node("n1", true, None),
            node("n2", false, Some("r2")),
            node("n4", true, Some("r9")),
        ];
        assert_eq!(left_out_in_cluster(Some(&prev), &rows), ["n2"], "n3 was deleted since");
        assert_eq!(ours_in_cluster(&rows, &chain(Some(&prev))), ["n2"]);
        assert_eq!(state_of(Some(&prev), "n3"), Some(NodeState::Back));
        assert!(chain(None).is_empty() && left_out(None).is_empty());
    }

    #[test]
    fn a_resumed_plan_goes_on_from_where_each_node_was_left() {
        let prev = record(
            "r1",
            &[
                ("n1", NodeState::Done),
                ("n2", NodeState::Failed),
                ("n3", NodeState::Pending),
            ],
        );
        let rows = [node("n1", true, None), node("n2", true, None)];
        let plan = resume_plan(&prev, &rows);
        let actions: Vec<(&str, bool, bool)> = plan.iter().map(|e| (e.name.as_str(), e.patch(), e.gone)).collect();
        assert_eq!(
            actions,
            [("n1", false, false), ("n2", true, false), ("n3", false, true)]
        );
        let probes = [probed("n2", ProbeResult::Probed(Box::new(probe())))];
        let nodes = starting_nodes(&plan, Some(&prev), &probes);
        let states: Vec<NodeState> = nodes.iter().map(|n| n.state).collect();
        assert_eq!(states, [NodeState::Done, NodeState::Failed, NodeState::Gone]);
        assert_eq!(nodes[1].kernel_before.as_deref(), Some("5.15.0-1070-azure"));
        let old = superseded(&prev, "r2");
        assert_eq!(old.status, RunStatus::Interrupted);
        assert_eq!(old.error.as_deref(), Some("resumed by run r2"));
        assert!(old.finished_at.is_some());
    }

    #[test]
    fn a_resumed_runs_pod_leaves_its_own_node_unless_the_interrupted_run_took_it_out() {
        let mut prev = record(
            "r1",
            &[
                ("n1", NodeState::Upgraded),
                ("n2", NodeState::Pending),
                ("n3", NodeState::Cordoned),
            ],
        );
        prev.nodes[2].in_hand = true;
        let rows = [node("n1", true, None), node("n2", true, None), node("n3", true, None)];
        // The new pod runs on n1, begun by the killed run but never taken out of service.
        let mut plan = resume_plan(&prev, &rows);
        crate::rollout::plan::leave_own_node(&mut plan, "n1", "aks-patch-2-x");
        let nodes = starting_nodes(&plan, Some(&prev), &[]);
        assert_eq!(nodes[0].state, NodeState::Skipped);
        assert!(
            nodes[0]
                .skip_reason
                .as_deref()
                .is_some_and(|r| r.contains("pod aks-patch-2-x")),
            "{:?}",
            nodes[0]
        );
        assert_eq!(nodes[1].state, NodeState::Pending);
        // A node out of service in the killed run's hands keeps its place in the run, even
        // if a plan said to skip it: the run must put it back.
        let mut plan = resume_plan(&prev, &rows);
        plan[2].action = "skip".into();
        let nodes = starting_nodes(&plan, Some(&prev), &[]);
        assert_eq!(nodes[2].state, NodeState::Cordoned);
    }
}
