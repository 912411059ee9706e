//! Another aks-patch run's node, as the refusals say it: out under a live run (wait for it),
//! left by a dead one (the resume that finishes it), or marked by a run that holds no live
//! lock; and `--force-unlock`, refused while such a node is not Ready.

use super::super::refusal::{Obstacle, Refusal};
use crate::kube::drain::put_back_by_hand;
use crate::kube::lock::Liveness;
use crate::kube::pending::{CLEAR_PENDING_BY_HAND, PENDING_TAINT};
use crate::kube::{LeaseState, NodeInfo};

/// What to say about node `node` that run `run` has out of service, given its lock.
pub enum OtherRun {
    /// The run holds a live lock: wait for it.
    Live { holder: String, renewed_ago: Option<u64> },
    /// The run's process on this host is gone.
    Dead { pid: u32 },
    /// Nothing says whether the run goes on (its lock is gone, expired or another's).
    Unknown,
}

impl OtherRun {
    pub fn of(lock: Option<&(LeaseState, Liveness)>) -> OtherRun {
        match lock {
            Some((st, Liveness::Live { .. } | Liveness::LiveHere { .. })) => OtherRun::Live {
                holder: st.holder.clone().unwrap_or_default(),
                renewed_ago: st.renewed_ago(jiff::Timestamp::now()).map(|d| d.as_secs()),
            },
            Some((_, Liveness::DeadHere { pid, .. })) => OtherRun::Dead { pid: *pid },
            _ => OtherRun::Unknown,
        }
    }

    /// The refusal of a run that needs node `node`, out of service under run `run`.
    pub fn refusal(&self, node: &str, run: &str) -> Refusal {
        let by_hand = put_back_by_hand(&[node]);
        match self {
            OtherRun::Live { holder, renewed_ago } => Refusal::new(
                Obstacle::OtherRollout,
                format!(
                    "node {node} is out of service under another aks-patch run, {run} (it holds the lock: {holder}{}), so it cannot be probed or patched now",
                    renewed_ago.map(|s| format!(", last renewed {s}s ago")).unwrap_or_default()
                ),
            )
            .hint(format!("wait for run {run} to finish (it puts node {node} back), then run again")),
            OtherRun::Dead { pid } => Refusal::new(
                Obstacle::OtherRollout,
                format!(
                    "node {node} is out of service, left by aks-patch run {run}, which is dead (pid {pid} on this host is gone)"
                ),
            )
            .hint(format!(
                "`aks-patch apply --resume --force-unlock` finishes that run (node {node} first), or `{by_hand}` puts the node back by hand"
            )),
            OtherRun::Unknown => Refusal::new(
                Obstacle::Node,
                format!(
                    "node {node} is out of service, marked by aks-patch run {run}, which holds no live lock (it died elsewhere, or it is finishing that node after losing its lock)"
                ),
            )
            .hint(format!(
                "if run {run} is still going, wait for it; if it died, `aks-patch apply --resume --force-unlock` where it ran finishes it, or `{by_hand}` puts the node back by hand"
            )),
        }
    }

    /// The warning beside another refusal, for node `node` (`status`) out under run `run`.
    pub fn warning(&self, node: &str, status: &str, run: &str) -> String {
        let by_hand = put_back_by_hand(&[node]);
        match self {
            OtherRun::Live { holder, .. } => format!(
                "node {node} is out of service ({status}) under aks-patch run {run}, which is live (it holds the lock: {holder}); wait for it to finish: it puts the node back"
            ),
            OtherRun::Dead { pid } => format!(
                "node {node} is out of service ({status}), left by aks-patch run {run}, which is dead (pid {pid} on this host is gone); `aks-patch apply --resume --force-unlock` finishes it, or `{by_hand}` puts it back by hand"
            ),
            OtherRun::Unknown => format!(
                "node {node} is out of service ({status}), taken out by aks-patch run {run}; if that run is not running any more, `aks-patch apply --resume --force-unlock` finishes it, or `{by_hand}` puts it back by hand"
            ),
        }
    }

    /// What to say about `nodes` carrying run `run`'s pending taint: nothing while that run is
    /// live (it removes it); else how it goes.
    pub fn pending_note(&self, nodes: &[&str], run: &str) -> Option<String> {
        let how = format!(
            "the next run that takes the lock removes it (`aks-patch apply --resume --force-unlock`), or `{CLEAR_PENDING_BY_HAND}` by hand"
        );
        match self {
            OtherRun::Live { .. } => None,
            OtherRun::Dead { pid } => Some(format!(
                "{} carry the pending taint {PENDING_TAINT} of aks-patch run {run}, which is dead (pid {pid} on this host is gone): new pods prefer other nodes; {how}",
                nodes.join(", ")
            )),
            OtherRun::Unknown => Some(format!(
                "{} carry the pending taint {PENDING_TAINT} of aks-patch run {run}, which holds no live lock: new pods prefer other nodes; {how}",
                nodes.join(", ")
            )),
        }
    }
}

/// The node of `rows` that run `run` has out of service, unless `run` is one of `chain`
/// (the runs this one continues: their nodes are its own to finish).
pub fn node_of<'a>(rows: &'a [NodeInfo], run: &str, chain: &[String]) -> Option<&'a NodeInfo> {
    if chain.iter().any(|c| c == run) {
        return None;
    }
    rows.iter().find(|r| r.in_progress.as_deref() == Some(run))
}

/// `--force-unlock` takes the lock over whatever its holder says: refused while a node that
/// another run has out of service is not Ready, as that run may still be working on it.
pub fn force_unlock(rows: &[NodeInfo], chain: &[String]) -> Option<Refusal> {
    let (node, run) = rows.iter().filter(|r| !r.is_ready()).find_map(|r| {
        r.in_progress
            .as_ref()
            .filter(|run| !chain.contains(run))
            .map(|run| (&r.name, run))
    })?;
    Some(
        Refusal::new(
            Obstacle::OtherRollout,
            format!("refusing --force-unlock: node {node} is out of service in run {run} and not Ready, so that run may still be working on it"),
        )
        .hint(format!("wait for run {run}, or resume it with --resume if it died")),
    )
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::node;
    use super::*;

    #[test]
    fn force_unlock_is_refused_while_another_runs_node_is_not_ready() {
        let rows = [node("n1", true, Some("r1")), node("n2", false, Some("r2"))];
        let r = force_unlock(&rows, &[]).expect("refused");
        assert_eq!(r.what, Obstacle::OtherRollout);
        assert!(
            r.why.contains("node n2 is out of service in run r2 and not Ready"),
            "{}",
            r.why
        );
        assert_eq!(
            force_unlock(&rows, &["r2".into()]),
            None,
            "a node of the run resumed is ours"
        );
        assert_eq!(force_unlock(&rows[..1], &[]), None, "a Ready node is back");
    }

    #[test]
    fn a_dead_runs_node_is_named_unless_this_run_continues_it() {
        let rows = [node("n1", true, None), node("n2", false, Some("r2"))];
        assert_eq!(node_of(&rows, "r2", &[]).map(|n| n.name.as_str()), Some("n2"));
        assert!(node_of(&rows, "r2", &["r2".into()]).is_none());
        let r = OtherRun::Dead { pid: 42 }.refusal("n2", "r2");
        assert_eq!(r.what, Obstacle::OtherRollout);
        assert!(
            r.why.contains("which is dead (pid 42 on this host is gone)"),
            "{}",
            r.why
        );
        assert_eq!(OtherRun::Unknown.refusal("n2", "r2").what, Obstacle::Node);
    }

    #[test]
    fn pending_taints_of_a_run_that_is_not_live_are_said_with_how_they_go() {
        let live = OtherRun::Live {
            holder: "me@host pid 1".into(),
            renewed_ago: Some(2),
        };
        assert_eq!(live.pending_note(&["n1"], "r1"), None, "a live run removes them itself");
        let dead = OtherRun::Dead { pid: 42 }.pending_note(&["n1", "n2"], "r1").unwrap();
        assert!(
            dead.starts_with("n1, n2 carry the pending taint aks-patch.io/pending of aks-patch run r1, which is dead")
                && dead.contains("--resume --force-unlock")
                && dead.contains("kubectl taint nodes --all aks-patch.io/pending-"),
            "{dead}"
        );
        assert!(OtherRun::Unknown.pending_note(&["n1"], "r1").is_some());
    }
}
