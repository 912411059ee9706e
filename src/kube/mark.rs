//! The mark of a node in aks-patch's hands: an annotation with the run id, from cordon to
//! uncordon, that any run, a human, or this run after a lost lock can read; and the commands
//! that put marked nodes back by hand. And the name of the pending taint ([`super::pending`]).

use k8s_openapi::api::core::v1::Node;

/// The annotation aks-patch puts on a node it has taken out of service (from cordon to
/// uncordon), with its run id: any run, a human, or this run after a lost lock can see that
/// the node is out.
pub const IN_PROGRESS_ANNOTATION: &str = "aks-patch.io/in-progress";

/// The run id a node is marked with, if any.
pub fn in_progress_run(node: &Node) -> Option<&str> {
    node.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(IN_PROGRESS_ANNOTATION))
        .map(String::as_str)
        .filter(|v| !v.is_empty())
}

/// The commands that put `nodes` back in service by hand: uncordon, and remove the
/// in-progress mark (without which every later run's health gate counts the node as out).
pub fn put_back_by_hand(nodes: &[&str]) -> String {
    let names = nodes.join(" ");
    format!("kubectl uncordon {names} && kubectl annotate node {names} {IN_PROGRESS_ANNOTATION}-")
}

/// The taint a run puts on every node it has still to patch (`PreferNoSchedule`, valued with
/// the run id), from the start of the run to the end of the node's turn: the scheduler then
/// prefers the nodes already patched for the pods the drains evict. It never keeps a pod off
/// a node (it is a preference), so removing it is always safe.
pub const PENDING_TAINT: &str = "aks-patch.io/pending";

/// The command that removes the pending taint from every node by hand.
pub const CLEAR_PENDING_BY_HAND: &str = "kubectl taint nodes --all aks-patch.io/pending-";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn putting_back_by_hand_uncordons_and_removes_the_mark() {
        assert_eq!(
            put_back_by_hand(&["a", "b"]),
            "kubectl uncordon a b && kubectl annotate node a b aks-patch.io/in-progress-"
        );
    }
}
