//! Steps 1 and 2 of a node's turn: probe, upgrade (detached on the node, never cut off by a
//! signal), probe again; then whether it reboots, and the proof of a node that does not.

use super::{Engine, NodeEnd, Turn};
use crate::kube::NodeInfo;
use crate::node::{self, PackageManager, Probe};
use crate::rollout::journal::{NodeState, RebootPolicy, StepName, StepOutcome, UpgradeMode, UpgradedPackage};
use crate::rollout::ports::NodeTarget;
use crate::rollout::progress::{Event, NodeStep, Wait, WaitDetail, Warning};
use crate::rollout::proof::{effective_mode, pending_of, Proof, RebootProof, UpgradeProof};
use crate::rollout::stop::{Halt, RunStop, UpgradeStopped, UpgradeUnfinished};
use std::time::Duration;
use tokio::time::Instant;

/// How often a running upgrade is looked at while it waits for the dpkg lock (the status
/// line says who holds it, and for how long).
const LOCK_WAIT_POLL: Duration = Duration::from_secs(5);

impl Engine<'_> {
    /// Step 1: probe, upgrade (detached on the node), probe again. Returns the last probe:
    /// nothing of the chosen mode may be pending in it.
    pub(super) async fn upgrade(&self, turn: &mut Turn<'_>, node: &NodeTarget) -> Result<Probe, RunStop> {
        let name = node.name.clone();
        self.begin(turn, StepName::Probe);
        let probe = match self.transport.probe(node).await {
            Ok(p) => p,
            Err(error) => {
                self.end(turn, StepOutcome::Failed, error.to_string());
                return Err(Halt::Probe {
                    node: name,
                    after_upgrade: false,
                    error,
                    left: self.left_as_is(turn),
                }
                .into());
            }
        };
        self.end(turn, StepOutcome::Ok, "");
        if let Some(why) = &probe.unsupported {
            return Err(Halt::Unsupported {
                node: name,
                why: why.clone(),
            }
            .into());
        }
        if let Some(eos) = probe
            .end_of_support
            .as_ref()
            .filter(|_| !self.cfg.options.allow_azure_linux_2)
        {
            return Err(Halt::EndOfSupport {
                node: name,
                why: eos.clone(),
                left: self.left_before_cordon(turn).await?,
            }
            .into());
        }
        let pm = probe.package_manager;
        let asked = self.cfg.options.upgrade_mode;
        if asked == UpgradeMode::Security
            && !probe.classifies_security()
            && !self.cfg.options.azure_linux_security_as_all
        {
            return Err(Halt::SecurityUnclassified {
                node: name,
                left: self.left_before_cordon(turn).await?,
            }
            .into());
        }
        turn.life.kernel_before(&probe.running_kernel);
        let mut after = probe.clone();
        if turn.life.state() == NodeState::Pending {
            let security = probe.security_packages();
            let mode = effective_mode(asked, &probe);
            if mode != asked {
                self.step(&name, NodeStep::SecurityAsAll);
            }
            match pm.upgrade_command(mode, self.cfg.dpkg_lock_timeout_secs, &security) {
                None => self.step(&name, NodeStep::NoSecurityUpdates),
                Some(_) if probe.pending.is_empty() => self.step(&name, NodeStep::NoUpdates),
                Some(cmd) => {
                    self.step(
                        &name,
                        NodeStep::Upgrading {
                            packages: probe.pending_count(),
                            mode,
                            manager: pm,
                        },
                    );
                    self.run_upgrade(turn, node, &cmd, pm).await?;
                    after = match self.transport.probe(node).await {
                        Ok(p) => p,
                        Err(error) => {
                            return Err(Halt::Probe {
                                node: name,
                                after_upgrade: true,
                                error,
                                left: self.left_as_is(turn),
                            }
                            .into())
                        }
                    };
                }
            }
            turn.life.upgraded()?;
            self.save(turn);
        }
        // Patched means: the upgrade succeeded (in this run or the one resumed) and nothing
        // of the chosen mode is pending any more.
        let left = pending_of(self.cfg.options.upgrade_mode, &after);
        if !left.is_empty() {
            return Err(Halt::StillPending {
                node: name,
                mode: self.cfg.options.upgrade_mode,
                packages: left,
                left: self.left_before_cordon(turn).await?,
            }
            .into());
        }
        Ok(after)
    }

    /// Run the upgrade detached on the node and wait for it. A signal never cuts apt off: the
    /// first Ctrl-C waits for it to finish, a second one stops waiting (apt goes on, and the
    /// run says so).
    async fn run_upgrade(
        &self,
        turn: &mut Turn<'_>,
        node: &NodeTarget,
        cmd: &str,
        pm: PackageManager,
    ) -> Result<(), RunStop> {
        let name = node.name.clone();
        let run_id = self.cfg.run_id.clone();
        let (log_path, _) = node::detached::upgrade_files(&run_id);
        self.begin(turn, StepName::Upgrade);
        if !turn.life.in_hand() {
            if let Some(stop) = self.record_stop(&format!("not upgrading node {name}")) {
                self.end(turn, StepOutcome::Skipped, "the run record cannot be written");
                return Err(stop);
            }
        }
        if let Err(error) = self.transport.start_upgrade(node, cmd, &run_id).await {
            self.end(turn, StepOutcome::Failed, error.to_string());
            return Err(Halt::StartUpgrade {
                node: name,
                error,
                left: self.left_as_is(turn),
            }
            .into());
        }
        self.wait_started(&name, Wait::Upgrade { manager: pm }, self.cfg.upgrade_timeout);
        let outcome = self.wait_upgrade(node, &run_id, pm).await;
        self.wait_done(&name);
        let (log, code) = match outcome {
            Ok(v) => v,
            Err(why) => {
                let stopped = UpgradeStopped {
                    node: name,
                    manager: pm,
                    log: log_path,
                    why,
                    left: self.left_as_is(turn),
                };
                self.end(turn, StepOutcome::Failed, stopped.to_string());
                if self.abandon.is_cancelled() {
                    self.tell(Event::Warning(Warning::UpgradeAbandoned(stopped)));
                    return Err(RunStop::Interrupted);
                }
                return Err(Halt::Upgrade(stopped).into());
            }
        };
        let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
        turn.life
            .upgrade_output(lines[lines.len().saturating_sub(40)..].join("\n"));
        if code != 0 {
            self.end(turn, StepOutcome::Failed, format!("{} exited with {code}", pm.tool()));
            return Err(Halt::UpgradeExited {
                node: name,
                manager: pm,
                code,
                last: pm.error_line(&log),
                left: self.left_as_is(turn),
            }
            .into());
        }
        let pkgs = pm.parse_upgrade_output(&log);
        turn.life.packages_upgraded(
            pkgs.iter()
                .map(|p| UpgradedPackage {
                    name: p.name.clone(),
                    version: p.version.clone(),
                })
                .collect(),
        );
        self.end(turn, StepOutcome::Ok, format!("{} package(s) upgraded", pkgs.len()));
        self.step(&name, NodeStep::PackagesUpgraded { count: pkgs.len() });
        Ok(())
    }

    /// Wait for the detached upgrade to end: its log and exit code, or why the wait ended
    /// first (the second signal, the timeout, a connection lost for good).
    async fn wait_upgrade(
        &self,
        node: &NodeTarget,
        run_id: &str,
        pm: PackageManager,
    ) -> Result<(String, i32), UpgradeUnfinished> {
        let name = &node.name;
        let deadline = Instant::now() + self.cfg.upgrade_timeout;
        let mut failures = 0u32;
        let mut told = false;
        let mut lock_held = false;
        let mut first_look = true;
        loop {
            if self.abandon.is_cancelled() {
                return Err(UpgradeUnfinished::Abandoned);
            }
            if self.cancel.is_cancelled() && !told {
                told = true;
                self.step(name, NodeStep::InterruptedDuringUpgrade { manager: pm });
            }
            if Instant::now() >= deadline {
                return Err(UpgradeUnfinished::TimedOut {
                    after: self.cfg.upgrade_timeout,
                });
            }
            // Behind a held dpkg lock (and at the first look, to find out), look more often:
            // the status line says who holds it.
            let poll = if lock_held || first_look {
                self.cfg.upgrade_poll.min(LOCK_WAIT_POLL)
            } else {
                self.cfg.upgrade_poll
            };
            let waited = tokio::select! {
                r = self.transport.wait_upgrade(node, run_id, poll) => Some(r),
                _ = self.abandon.cancelled() => None,
            };
            match waited {
                None => continue,
                Some(Ok(Some(done))) => return Ok(done),
                Some(Ok(None)) => {
                    failures = 0;
                    first_look = false;
                    let wait = self.transport.upgrade_lock_wait(node);
                    let detail = match &wait {
                        Some(w) => Some(WaitDetail::PackageLock(w.clone())),
                        None if lock_held => Some(WaitDetail::Upgrading { manager: pm }),
                        None => None,
                    };
                    if let Some(detail) = detail {
                        self.tell(Event::WaitProgress {
                            node: name.clone(),
                            detail,
                        });
                    }
                    lock_held = wait.is_some();
                }
                // The connection was cut (a signal to our process group, a network blip):
                // apt goes on detached; connect again and keep waiting.
                Some(Err(e)) => {
                    tracing::debug!("waiting for the upgrade on {name}: {e}; reconnecting");
                    self.transport.disconnect(node).await;
                    failures += 1;
                    if failures > 5 && !self.cancel.is_cancelled() {
                        return Err(UpgradeUnfinished::ConnectionLost { error: e });
                    }
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
            }
        }
    }

    /// Step 2: does the node reboot?
    pub(super) fn decide_reboot(&self, turn: &Turn<'_>, after: &Probe) -> bool {
        let name = turn.life.name();
        let needs = after.reboot_required;
        let reboot = match self.cfg.options.reboot {
            RebootPolicy::Always => !turn.life.rebooted() || needs,
            RebootPolicy::Never => false,
            RebootPolicy::IfRequired => needs,
        };
        if reboot {
            if !after.reboot_packages.is_empty() {
                self.step(
                    name,
                    NodeStep::RebootRequiredBy {
                        packages: after.reboot_packages.clone(),
                    },
                );
            }
        } else if needs {
            self.step(name, NodeStep::RebootRequiredButNever);
        } else {
            self.step(name, NodeStep::NoRebootRequired);
        }
        reboot
    }

    /// A node that does not reboot: put back if an earlier run had taken it out, then proven
    /// by the probe after its upgrade (or, if it rebooted since it was taken out, as rebooted).
    pub(super) async fn done_without_reboot(
        &self,
        turn: &mut Turn<'_>,
        row: &NodeInfo,
        after: &Probe,
    ) -> Result<NodeEnd, RunStop> {
        let name = turn.name();
        if let Some(release) = self.release_if_in_hand(turn).await? {
            self.step(&name, NodeStep::Released(release.clone()));
            if !release.put_back() {
                return Err(Halt::NotPutBack {
                    node: name,
                    release,
                    unproven: None,
                }
                .into());
            }
        }
        turn.life.kernel_after(&after.running_kernel);
        let mode = self.cfg.options.upgrade_mode;
        // A node that rebooted since the interrupted run took it out is proven as
        // rebooted when the observations allow it (new bootID, Ready, then this probe).
        let rebooted = turn
            .life
            .boot_id_before()
            .filter(|_| turn.life.rebooted())
            .and_then(|before| RebootProof::new(before, row, after, mode).ok());
        let proof = match rebooted {
            Some(p) => Proof::Rebooted(p),
            None => UpgradeProof::new(after, mode, self.cfg.options.reboot)
                .map(Proof::NotRebooted)
                .map_err(|no| Halt::NotPatched { node: name, no })?,
        };
        Ok(NodeEnd::Done(proof))
    }
}
