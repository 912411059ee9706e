//! Picking up a node an interrupted run left: in the order that puts back first what it
//! left out of service, and from where it was, honestly (a node rebooting is waited for, one
//! left cordoned that rebooted since is proven as rebooted, an unproven one is proven first
//! without a cordon or a reboot, a failed one is redone from its upgrade).

use super::{target, Engine, NodeEnd, Turn};
use crate::kube::NodeInfo;
use crate::rollout::journal::{NodeRecord, NodeState, RunRecord, StepName, StepOutcome};
use crate::rollout::progress::{NodeStep, Resumed};
use crate::rollout::proof::{NoProof, Proof, RebootProof};
use crate::rollout::stop::{Halt, RunStop, Unproven};
use std::time::Duration;
use tokio::time::Instant;

/// How long a resume tries to reach an `unproven` node before it leaves it unproven.
const PROVE_AGAIN_WITHIN: Duration = Duration::from_secs(60);

/// A node a resumed run finishes before any other: left out of service, or rebooted but
/// not proven patched.
pub(super) fn first_on_resume(n: &NodeRecord) -> bool {
    n.left_out() || n.state == NodeState::Unproven
}

/// The order in which a run visits its record's nodes: those out of service (in hand,
/// rebooting, back from a reboot) and those rebooted but unproven first, then the others in
/// the plan's order.
pub(super) fn resume_order(rec: &RunRecord) -> Vec<usize> {
    let (mut first, rest): (Vec<usize>, Vec<usize>) =
        (0..rec.nodes.len()).partition(|i| first_on_resume(&rec.nodes[*i]));
    first.extend(rest);
    first
}

/// The node's last step is its reboot, begun and not known to have failed: the reboot
/// command may have gone out.
fn reboot_begun(n: &NodeRecord) -> bool {
    n.steps
        .last()
        .is_some_and(|s| s.name == StepName::Reboot && s.outcome != StepOutcome::Failed)
}

impl Engine<'_> {
    /// Resuming a node that was mid-way: pick up where it was. `Some` when the node's turn
    /// is over already.
    pub(super) async fn resume(&self, turn: &mut Turn<'_>, row: &NodeInfo) -> Result<Option<NodeEnd>, RunStop> {
        let name = turn.name();
        let state = turn.life.state();
        if state == NodeState::Unproven {
            return self.prove_unproven(turn, row).await.map(Some);
        }
        if matches!(state, NodeState::Rebooting | NodeState::Back) {
            self.step(&name, NodeStep::Resuming(Resumed::WasRebooting));
            return self.finish_reboot(turn, row).await.map(Some);
        }
        if turn.life.in_hand() {
            let old = turn.life.boot_id_before();
            if !row.is_ready() {
                self.step(&name, NodeStep::Resuming(Resumed::LeftOutNotReady));
                return self.finish_reboot(turn, row).await.map(Some);
            }
            if old.is_some() && row.boot_id.is_some() && row.boot_id.as_deref() != old {
                self.step(&name, NodeStep::Resuming(Resumed::LeftCordonedRebootedSince));
                turn.life.rebooted_since(row.boot_id.clone())?;
            } else if reboot_begun(turn.life.record()) && self.transport.probe(&target(row)).await.is_err() {
                // Stopped around the reboot command (sent, not yet recorded): the node is
                // still Ready in the API (the kubelet's status lags) but cannot be reached,
                // it is going down. Its reboot is waited for and proven like any other.
                self.step(&name, NodeStep::Resuming(Resumed::RebootSentUnreachable));
                return self.finish_reboot(turn, row).await.map(Some);
            } else {
                self.step(&name, NodeStep::Resuming(Resumed::LeftCordoned));
            }
        }
        if state == NodeState::Failed {
            // Every step of a failed node is done again, its upgrade included.
            self.step(&name, NodeStep::Resuming(Resumed::Failed));
            turn.life.redo()?;
            self.save(turn);
        }
        Ok(None)
    }

    /// Resuming a node that rebooted but was not proven patched: prove it first, without
    /// cordoning or rebooting it again. Done with the proof; unproven still while it cannot
    /// be reached or is not Ready; failed (redone from the upgrade by the next resume) when
    /// the check says it is not patched.
    async fn prove_unproven(&self, turn: &mut Turn<'_>, row: &NodeInfo) -> Result<NodeEnd, RunStop> {
        let name = turn.name();
        self.step(&name, NodeStep::Resuming(Resumed::Unproven));
        let old_boot = turn.life.boot_id_before().unwrap_or_default().to_string();
        self.begin(turn, StepName::Verify);
        let within = Duration::from_secs(self.cfg.options.reboot_timeout).min(PROVE_AGAIN_WITHIN);
        let probe = match self.probe_after_reboot(&target(row), Instant::now() + within).await {
            Ok(p) => p,
            Err(error) => {
                self.end(turn, StepOutcome::Failed, error.to_string());
                return Ok(NodeEnd::Unproven(Unproven::StillUnchecked { error }));
            }
        };
        turn.life.kernel_after(&probe.running_kernel);
        match RebootProof::new(&old_boot, row, &probe, self.cfg.options.upgrade_mode) {
            Ok(p) => {
                self.end(turn, StepOutcome::Ok, format!("marker gone, running {}", p.kernel()));
                self.step(
                    &name,
                    NodeStep::Proven {
                        kernel: p.kernel().to_string(),
                    },
                );
                Ok(NodeEnd::Done(Proof::Rebooted(p)))
            }
            Err(NoProof::NotReady) => {
                self.end(turn, StepOutcome::Failed, "not Ready");
                Ok(NodeEnd::Unproven(Unproven::NotReady))
            }
            Err(no) => {
                self.end(turn, StepOutcome::Failed, no.to_string());
                Err(Halt::NotPatchedOnResume { node: name, no }.into())
            }
        }
    }
}
