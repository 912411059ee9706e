//! What must hold before a node is taken out, checked in this order just before its cordon:
//! the cluster's health (no other node out, the last drain's workloads Ready and its budgets
//! allowing disruptions again), the maintenance window, the operator's blockers, and
//! somewhere to go for the pods its drain would evict. A gate that does not open puts the
//! node back if an earlier run had taken it out; its packages stay upgraded.

use super::{Engine, LastDrain, NodeEnd, Turn};
use crate::rollout::blockers::{wait_clear, BlockStop};
use crate::rollout::gate::{wait_gate, GateStop};
use crate::rollout::journal::{StepName, StepOutcome};
use crate::rollout::progress::{Event, NodeStep, Wait, Warning};
use crate::rollout::stop::{AndRelease, Halt, RunStop};
use std::time::Duration;

impl Engine<'_> {
    /// Step 3: the gates, in order; after the blockers held a while, the cluster and the
    /// window once more.
    pub(super) async fn before_taking_out(&self, turn: &mut Turn<'_>, last: &LastDrain) -> Result<(), RunStop> {
        self.health_gate(turn, last).await?;
        self.window_gate(turn).await?;
        if let Some(b) = self.blockers.clone() {
            let name = turn.name();
            let waited = wait_clear(
                b.source.as_ref(),
                Some(&name),
                b.wait,
                b.poll,
                &self.cancel,
                self.progress,
            )
            .await;
            match waited {
                Ok(false) => {}
                Ok(true) => {
                    // Time went by: the cluster and the window once more.
                    self.health_gate(turn, last).await?;
                    self.window_gate(turn).await?;
                }
                Err(BlockStop::Cancelled) => return self.stop_before_cordon(turn).await.map(|_| ()),
                Err(e) => {
                    let release = self.release_if_in_hand(turn).await?;
                    return Err(RunStop::Blocked(format!(
                        "not taking node {name} out: {e}; its packages are upgraded{}",
                        AndRelease(&release)
                    )));
                }
            }
        }
        self.pods_gate(turn).await
    }

    /// `Err` when a node's disruption would not end inside an open window now.
    pub(super) fn window_check(&self, what: &str) -> Result<(), RunStop> {
        let Some(w) = &self.window else {
            return Ok(());
        };
        let verdict = w.schedule.verdict(self.clock.now(), w.budget);
        if verdict.fits() {
            return Ok(());
        }
        Err(RunStop::OutsideWindow(format!(
            "{what}: {}",
            verdict.explain(&w.schedule, w.budget)
        )))
    }

    /// The maintenance window, just before the node is taken out: when it closes before the
    /// node would be back, its reboot waits for the next one.
    async fn window_gate(&self, turn: &mut Turn<'_>) -> Result<(), RunStop> {
        let name = turn.name();
        if let Err(stop) = self.window_check(&format!("not taking node {name} out")) {
            let release = self.release_if_in_hand(turn).await?;
            self.step(&name, NodeStep::RebootWaitsForWindow { release });
            return Err(stop);
        }
        Ok(())
    }

    /// Nothing else may be out: first no other node (a node that died would also keep the
    /// last drain's budgets from recovering), then those budgets must allow disruptions
    /// again, then once more no other node.
    async fn health_gate(&self, turn: &mut Turn<'_>, last: &LastDrain) -> Result<(), RunStop> {
        self.gate_step(turn, last).await?;
        if last.pdbs.is_empty() {
            return Ok(());
        }
        let name = turn.name();
        self.step(&name, NodeStep::WaitingForPdbs { count: last.pdbs.len() });
        let timeout = Duration::from_secs(self.cfg.options.drain_timeout);
        self.wait_started(&name, Wait::PdbsRecover, timeout);
        let r = tokio::select! {
            r = self.cluster.wait_pdbs(&last.pdbs, timeout) => Some(r),
            _ = self.cancel.cancelled() => None,
        };
        self.wait_done(&name);
        match r {
            Some(Ok(())) => {}
            Some(Err(error)) if !self.cancel.is_cancelled() => {
                let release = self.release_if_in_hand(turn).await?;
                return Err(Halt::PdbsNotRecovered {
                    node: name,
                    error,
                    release,
                }
                .into());
            }
            // Interrupted while waiting.
            _ => return self.stop_before_cordon(turn).await.map(|_| ()),
        }
        self.gate_step(turn, last).await
    }

    /// The health gate, waited for, as a step of the record.
    async fn gate_step(&self, turn: &mut Turn<'_>, last: &LastDrain) -> Result<(), RunStop> {
        let name = turn.name();
        self.begin(turn, StepName::HealthGate);
        let r = wait_gate(
            self.cluster,
            std::slice::from_ref(&name),
            &last.workloads,
            &turn.budget(),
            self.cfg.gate_wait,
            self.cfg.gate_poll,
            &self.cancel,
            self.progress,
        )
        .await;
        match r {
            Ok(()) => {
                self.end(turn, StepOutcome::Ok, "");
                Ok(())
            }
            Err(GateStop::Cancelled) => {
                self.end(turn, StepOutcome::Skipped, "interrupted");
                self.stop_before_cordon(turn).await.map(|_| ())
            }
            Err(gate) => {
                self.end(turn, StepOutcome::Failed, gate.to_string());
                let release = self.release_if_in_hand(turn).await?;
                Err(Halt::Unhealthy {
                    node: name,
                    gate,
                    release,
                }
                .into())
            }
        }
    }

    /// Just before the cordon: the pods the drain would evict must have somewhere to go (the
    /// cluster may have changed since the pre-flight: a node cordoned by hand), unless
    /// `--allow-pending-pods`. Refused as the pre-flight refuses, the node not taken out.
    async fn pods_gate(&self, turn: &mut Turn<'_>) -> Result<(), RunStop> {
        let name = turn.name();
        let stranded = match self.cluster.stranded_pods(&name, &self.cfg.drain).await {
            Ok(s) => s,
            Err(error) => {
                let release = self.release_if_in_hand(turn).await?;
                return Err(Halt::PodsUnknown {
                    node: name,
                    error,
                    release,
                }
                .into());
            }
        };
        if stranded.is_empty() {
            return Ok(());
        }
        if self.cfg.options.allow_pending_pods {
            self.tell(Event::Warning(Warning::PendingPodsAllowed { node: name, stranded }));
            return Ok(());
        }
        let text = crate::rollout::preflight::nowhere_to_go_text(&name, &stranded);
        let release = self.release_if_in_hand(turn).await?;
        Err(RunStop::Refused(format!(
            "not taking node {name} out: {text}{}; its packages are upgraded; {}",
            AndRelease(&release),
            crate::rollout::preflight::PENDING_PODS_HINT
        )))
    }

    /// Stop at a safe point before the cordon, with the node put back first if it was in hand.
    pub(super) async fn stop_before_cordon(&self, turn: &mut Turn<'_>) -> Result<NodeEnd, RunStop> {
        let release = self.release_if_in_hand(turn).await?;
        self.step(&turn.name(), NodeStep::StoppedBeforeCordon { release });
        Err(RunStop::Interrupted)
    }
}
