//! The pending taint ([`crate::kube::pending`]): put on every node still to do when the run
//! starts, so that the pods each drain evicts prefer the nodes already patched and move once;
//! removed from each node when its turn ends, and from all of them when the run ends, however
//! it ends (removing a `PreferNoSchedule` taint is always safe: no fencing, even after the lock
//! is lost). `--no-pending-taint` turns it off. A failure is a warning: the taint only spares
//! pods a move.

use super::{lock, Engine};
use crate::rollout::journal::RunRecord;
use crate::rollout::node_life::finished;
use crate::rollout::progress::{Event, Warning};

impl Engine<'_> {
    /// At the start of the run: the pending taint on every node of the record still to do.
    pub(super) async fn mark_pending(&self, rec: &RunRecord) {
        if self.cfg.options.no_pending_taint {
            return;
        }
        let todo: Vec<String> = rec
            .nodes
            .iter()
            .filter(|n| !finished(n.state))
            .map(|n| n.name.clone())
            .collect();
        if todo.is_empty() {
            return;
        }
        *lock(&self.pending) = todo.clone();
        if let Err(e) = self.cluster.mark_pending(&todo, &self.cfg.run_id).await {
            self.tell(Event::Warning(Warning::PendingNotMarked { error: e.to_string() }));
        }
    }

    /// A node's turn ended: its pending taint goes (a failure leaves it to the end of the run).
    pub(super) async fn unpend(&self, node: &str) {
        if !lock(&self.pending).iter().any(|n| n == node) {
            return;
        }
        if self.cluster.clear_pending(&[node.to_string()]).await.is_ok() {
            lock(&self.pending).retain(|n| n != node);
        }
    }

    /// The run ends: the pending taint off every node that may still carry it.
    pub(super) async fn clear_pending(&self) {
        let nodes = std::mem::take(&mut *lock(&self.pending));
        if nodes.is_empty() {
            return;
        }
        if let Err(e) = self.cluster.clear_pending(&nodes).await {
            self.tell(Event::Warning(Warning::PendingNotCleared {
                nodes,
                error: e.to_string(),
            }));
        }
    }
}
