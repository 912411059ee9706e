//! Steps 7 and 8 of a node's turn: back from its reboot (a new bootID, Ready), proven
//! patched by what is observed after the reboot, and put back in service; and where a node
//! is left when its turn stops early.

use super::{target, Engine, NodeEnd, Turn};
use crate::kube::reboot::RebootEvent;
use crate::kube::NodeInfo;
use crate::node::Probe;
use crate::rollout::journal::{StepName, StepOutcome};
use crate::rollout::ports::{FailureKind, NodeTarget, PortError};
use crate::rollout::progress::{Detail, Event, NodeStep, Wait, Warning};
use crate::rollout::proof::{Proof, RebootProof};
use crate::rollout::stop::{Halt, NodeLeft, Release, RunStop, Unproven};
use std::time::Duration;
use tokio::time::Instant;

/// The first wait between two attempts to probe a node after its reboot, and the longest.
const PROBE_RETRY_FIRST: Duration = Duration::from_secs(2);
const PROBE_RETRY_MAX: Duration = Duration::from_secs(20);
/// The least time one probe after a reboot is given (as long as a transport's own probe
/// may take: run commands take tens of seconds).
const PROBE_ATTEMPT_MIN: Duration = Duration::from_secs(120);

impl Engine<'_> {
    /// Step 7: wait for the reboot to be proven (new bootID, Ready, taints gone), verify the
    /// marker, the kernel and that nothing is pending, put the node back.
    pub(super) async fn finish_reboot(&self, turn: &mut Turn<'_>, row: &NodeInfo) -> Result<NodeEnd, RunStop> {
        let name = turn.name();
        let old_boot = turn
            .life
            .boot_id_before()
            .map(str::to_string)
            .or_else(|| row.boot_id.clone())
            .unwrap_or_default();
        let started = Instant::now();
        self.begin(turn, StepName::WaitReady);
        if self.cancel.is_cancelled() {
            self.step(&name, NodeStep::InterruptedWhileRebooting);
        }
        let progress = self.progress;
        let n2 = name.clone();
        let booted = std::sync::Arc::new(tokio::sync::Notify::new());
        let booted_tx = booted.clone();
        let tell = move |event: RebootEvent| {
            if let RebootEvent::Booted { .. } = event {
                booted_tx.notify_one();
            }
            progress.tell(Event::Reboot {
                node: n2.clone(),
                event,
            })
        };
        let timeout = Duration::from_secs(self.cfg.options.reboot_timeout);
        self.wait_started(&name, Wait::Ready, timeout);
        // The check after the reboot (marker, kernel, pending updates) does not depend on
        // Ready: it runs as soon as the node has booted, while its kubelet gets Ready, so
        // that the node is put back the moment it is Ready. If it fails then (SSH not up
        // yet), it runs again once the node is Ready.
        let (back, early_probe) = {
            let early_target = target(row);
            let transport = self.transport;
            let early = async {
                booted.notified().await;
                transport.probe(&early_target).await
            };
            let wait = self.cluster.wait_for_reboot(&name, &old_boot, timeout, &tell);
            tokio::pin!(early, wait);
            let mut early_probe = None;
            loop {
                tokio::select! {
                    r = &mut wait => break (r, early_probe),
                    p = &mut early, if early_probe.is_none() => early_probe = Some(p),
                }
            }
        };
        self.wait_done(&name);
        let back = match back {
            Ok(r) => r,
            Err(error) => {
                self.end(turn, StepOutcome::Failed, error.to_string());
                return Err(Halt::NotBack { error }.into());
            }
        };
        turn.life.back(back.boot_id.clone(), back.kernel_version.clone())?;
        self.end(
            turn,
            StepOutcome::Ok,
            format!(
                "new bootID, kernel {}",
                back.kernel_version.as_deref().unwrap_or("<unknown>")
            ),
        );

        // The proof: the marker gone (on Azure Linux `needs-restarting -r` clean) and nothing
        // of the run's mode pending, observed after the reboot. Without it the node is never
        // reported patched.
        self.begin(turn, StepName::Verify);
        let node = target(&back);
        let probed = match early_probe {
            Some(Ok(p)) => Ok(p),
            _ => self.probe_after_reboot(&node, started + timeout).await,
        };
        let proven = match probed {
            Ok(p) => {
                turn.life.kernel_after(&p.running_kernel);
                RebootProof::new(&old_boot, &back, &p, self.cfg.options.upgrade_mode)
            }
            Err(error) => {
                // Ready with a new bootID, but unchecked: capacity comes back (the node is
                // uncordoned), the node is recorded unproven, and the run stops on it.
                self.tell(Event::Warning(Warning::CannotCheckAfterReboot {
                    node: name.clone(),
                    error: error.to_string(),
                }));
                self.end(turn, StepOutcome::Failed, error.to_string());
                let unchecked = |release| Unproven::Unchecked {
                    boot_id: back.boot_id.clone(),
                    timeout,
                    error: error.clone(),
                    release,
                };
                let release = self.put_back_after_reboot(turn).await?;
                if let Some(r) = release.clone().filter(|r| !r.put_back()) {
                    return Err(Halt::NotPutBack {
                        node: name,
                        release: r,
                        unproven: Some(unchecked(None)),
                    }
                    .into());
                }
                return Ok(NodeEnd::Unproven(unchecked(release)));
            }
        };
        match &proven {
            Ok(p) => self.end(turn, StepOutcome::Ok, format!("marker gone, running {}", p.kernel())),
            Err(no) => {
                self.tell(Event::Warning(Warning::NotProvenAfterReboot {
                    node: name.clone(),
                    no: no.clone(),
                }));
                self.end(turn, StepOutcome::Warning, no.to_string());
            }
        }
        if let Some(r) = self.put_back_after_reboot(turn).await?.filter(|r| !r.put_back()) {
            return Err(Halt::NotPutBack {
                node: name,
                release: r,
                unproven: None,
            }
            .into());
        }
        match proven {
            Ok(p) => Ok(NodeEnd::Done(Proof::Rebooted(p))),
            // Never patched while it still needs a reboot or has updates of its mode
            // pending: the resume redoes it.
            Err(no) => Err(Halt::NotPatchedAfterReboot { node: name, no }.into()),
        }
    }

    /// Put a node back after its reboot, saying how (a node a resumed run found back from its
    /// reboot may be out of the run's hands already: nothing to do).
    async fn put_back_after_reboot(&self, turn: &mut Turn<'_>) -> Result<Option<Release>, RunStop> {
        let release = self.release_if_in_hand(turn).await?;
        if let Some(r) = &release {
            self.step(&turn.name(), NodeStep::Released(r.clone()));
        }
        Ok(release)
    }

    /// Probe a node after its reboot, again with backoff while the transport fails, until
    /// `deadline` (one attempt at least). A signal stops the attempts.
    pub(super) async fn probe_after_reboot(&self, node: &NodeTarget, deadline: Instant) -> Result<Probe, PortError> {
        let mut pause = PROBE_RETRY_FIRST;
        let mut attempts = 0u32;
        loop {
            self.transport.disconnect(node).await;
            attempts += 1;
            // One attempt may outlast the deadline a little (a slow probe is not cut off
            // below PROBE_ATTEMPT_MIN), never by a hung transport's own timeout.
            let left = deadline
                .saturating_duration_since(Instant::now())
                .max(PROBE_ATTEMPT_MIN);
            let e = match tokio::time::timeout(left, self.transport.probe(node)).await {
                Ok(Ok(p)) => return Ok(p),
                Ok(Err(e)) => e,
                Err(_) => PortError::of_kind(
                    FailureKind::Timeout,
                    format!(
                        "the probe of node {} did not answer within {}s",
                        node.name,
                        left.as_secs()
                    ),
                ),
            };
            let now = Instant::now();
            if now >= deadline || self.cancel.is_cancelled() || e.is_auth() {
                if attempts == 1 {
                    return Err(e);
                }
                let message = format!("{} ({attempts} attempts)", e.message);
                return Err(e.reworded(message));
            }
            let wait = pause.min(deadline - now);
            if attempts == 1 {
                self.step(
                    &node.name,
                    NodeStep::CannotCheckYet {
                        error: e.to_string(),
                        for_up_to: deadline - now,
                    },
                );
            }
            self.tell(Event::Detail(Detail::ProbeAfterRebootFailed {
                node: node.name.clone(),
                error: e.to_string(),
                retry_in: wait,
            }));
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.cancel.cancelled() => {}
            }
            pause = (pause * 2).min(PROBE_RETRY_MAX);
        }
    }

    /// Step 8: put the node back: remove our mark, and uncordon it unless it was cordoned
    /// before aks-patch came.
    pub(super) async fn release(&self, turn: &mut Turn<'_>) -> Result<Release, RunStop> {
        let node = turn.name();
        let uncordon = !turn.life.cordoned_before();
        match self.cluster.release(&node, uncordon).await {
            Ok(()) => {
                turn.life.released(self.now())?;
                self.save(turn);
                Ok(if uncordon {
                    Release::Uncordoned { node }
                } else {
                    Release::StaysCordoned { node }
                })
            }
            Err(error) => {
                self.save(turn);
                Ok(Release::Failed { node, error })
            }
        }
    }

    /// Put the node back if the run has it in hand.
    pub(super) async fn release_if_in_hand(&self, turn: &mut Turn<'_>) -> Result<Option<Release>, RunStop> {
        if turn.life.in_hand() {
            self.release(turn).await.map(Some)
        } else {
            Ok(None)
        }
    }

    /// Where a node is left when its turn stops before the cordon: put back if an earlier
    /// run had taken it out, else never cordoned.
    pub(super) async fn left_before_cordon(&self, turn: &mut Turn<'_>) -> Result<NodeLeft, RunStop> {
        Ok(match self.release_if_in_hand(turn).await? {
            Some(release) => NodeLeft::PutBack(release),
            None => NodeLeft::NotCordoned,
        })
    }

    /// Where a node stays while its upgrade cannot go on: in hand if an earlier run had
    /// taken it out (nothing is tried), else never cordoned.
    pub(super) fn left_as_is(&self, turn: &Turn<'_>) -> NodeLeft {
        if turn.life.in_hand() {
            NodeLeft::InHand
        } else {
            NodeLeft::NotCordoned
        }
    }
}
