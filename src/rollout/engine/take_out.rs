//! Steps 4 to 6 of a node's turn: kured's lock taken, cordon (and mark), drain, reboot; while
//! it reboots, the next node's packages downloaded (one at a time) or, in a batch, the next
//! node of its zone upgraded ahead ([`Ahead`]). Each step proves the lock ours first; a step
//! that fails puts the node back.

use super::{lock, target, Engine, NodeEnd, Turn};
use crate::kube::drain::DrainEvent;
use crate::kube::NodeInfo;
use crate::node::PackageManager;
use crate::rollout::batches::MaxUnavailable;
use crate::rollout::journal::{Evicted, NodeState, RunRecord, StepName, StepOutcome, UpgradeMode};
use crate::rollout::ports::{DrainStop, NodeTarget, Transport};
use crate::rollout::progress::Progress;
use crate::rollout::progress::{Detail, Event, NodeStep, Wait, Warning};
use crate::rollout::stop::{Halt, RunStop};
use std::sync::Mutex;
use std::time::Duration;

/// Held by a node of a batch from its gates to its cordon.
pub(super) type TakeOut<'a> = tokio::sync::MutexGuard<'a, ()>;

/// `--max-unavailable`: what a node of a batch does for a node expected after it, while it
/// reboots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Ahead {
    /// A node of the batch's zone, expected to take a place it frees (with a percentage, a
    /// node of the rebooting node's pool, whose places they are): its packages are
    /// upgraded (its turn's steps 1 and 2; it stays in service, as during its own upgrade),
    /// so that its turn only takes it out. A failure is the node's own: the batch takes no
    /// more nodes and the run halts on it once the nodes in flight are done.
    Upgrade {
        /// Its index in the run record.
        index: usize,
        name: String,
        pool: String,
    },
    /// A node of the batch expected after this one (another zone): its packages are only
    /// downloaded (nothing installed before its zone's turn).
    Download(String),
}

impl Ahead {
    pub(super) fn node(&self) -> &str {
        match self {
            Ahead::Upgrade { name, .. } | Ahead::Download(name) => name,
        }
    }
}

impl Engine<'_> {
    /// Steps 4 to 6, under kured's lock (kured must not reboot another node beside ours);
    /// then [`Engine::finish_reboot`].
    pub(super) async fn take_out_and_reboot(
        &self,
        turn: &mut Turn<'_>,
        row: &NodeInfo,
        take_out: Option<TakeOut<'_>>,
    ) -> Result<NodeEnd, RunStop> {
        let name = turn.name();
        let ttl = Duration::from_secs(self.cfg.options.drain_timeout + self.cfg.options.reboot_timeout);
        // In a batch, kured's lock is the batch's, taken before its first node.
        if turn.batch.is_some() {
            return self.cordon_drain_reboot(turn, row, take_out).await;
        }
        let kured = match self.cluster.take_kured_lock(&name, ttl).await {
            Ok(taken) => taken,
            Err(error) => {
                let release = self.release_if_in_hand(turn).await?;
                return Err(Halt::KuredLock {
                    node: name,
                    error,
                    release,
                }
                .into());
            }
        };
        if kured {
            self.step(&name, NodeStep::KuredLockTaken);
        }
        let result = self.cordon_drain_reboot(turn, row, take_out).await;
        if kured {
            if let Err(e) = self.cluster.release_kured_lock(&name).await {
                self.tell(Event::Warning(Warning::KuredLockNotReleased { error: e.to_string() }));
            }
        }
        result
    }

    async fn cordon_drain_reboot(
        &self,
        turn: &mut Turn<'_>,
        row: &NodeInfo,
        take_out: Option<TakeOut<'_>>,
    ) -> Result<NodeEnd, RunStop> {
        self.cordon(turn, row).await?;
        // Marked as ours now: the next node of the batch counts it.
        drop(take_out);
        self.drain(turn).await?;
        if self.cancel.is_cancelled() {
            let release = self.release(turn).await?;
            self.step(&turn.name(), NodeStep::StoppedBeforeReboot(release));
            return Err(RunStop::Interrupted);
        }
        self.reboot(turn, row).await?;
        let row = self
            .cluster
            .node(&turn.name())
            .await
            .ok()
            .flatten()
            .unwrap_or_else(|| row.clone());
        let (run, name, pool) = (turn.run, turn.name(), turn.life.record().pool.clone());
        let (done, ()) = tokio::join!(self.finish_reboot(turn, &row), self.work_ahead(run, &name, &pool));
        done
    }

    /// While node `me` (of `my_pool`) reboots: the next node's packages downloaded (one at a
    /// time), or in a batch, the next node expected upgraded or downloaded ahead ([`Ahead`]).
    async fn work_ahead(&self, run: &Mutex<RunRecord>, me: &str, my_pool: &str) {
        // With a percentage, places are each pool's: the place this node frees goes to a
        // node of its pool, so that is the one upgraded (none: the next zone's downloaded).
        let per_pool = matches!(
            self.cfg.batches.as_ref().map(|b| &b.max),
            Some(MaxUnavailable::Percent(_))
        );
        let upgrade = {
            let mut ahead = lock(&self.ahead);
            let mine = |a: &Ahead| matches!(a, Ahead::Upgrade { pool, .. } if !per_pool || pool == my_pool);
            match ahead.iter().rposition(mine) {
                Some(at) if lock(&self.next).is_none() => Some(ahead.remove(at)),
                _ => None,
            }
        };
        if let Some(Ahead::Upgrade { index, name, .. }) = upgrade {
            return self.upgrade_ahead(run, index, &name, me).await;
        }
        let next = self.next_download().await;
        download_ahead(self.transport, self.progress, next).await;
    }

    /// Upgrade `node` (record index `i`) ahead of its turn, while `me` reboots (see
    /// [`Ahead::Upgrade`]): only while the batch takes more nodes; not beside its own turn,
    /// nor on a node that is not pending any more.
    async fn upgrade_ahead(&self, run: &Mutex<RunRecord>, i: usize, node: &str, me: &str) {
        if !self.takes_more_nodes() {
            return;
        }
        let upgrading = self.upgrade_lock(i);
        let Ok(_upgrading) = upgrading.try_lock() else {
            return;
        };
        if lock(run).nodes[i].state != NodeState::Pending {
            return;
        }
        let Ok(Some(row)) = self.cluster.node(node).await else {
            return;
        };
        let mut turn = Turn::new(run, i, None);
        self.step(node, NodeStep::UpgradingAhead { beside: me.to_string() });
        match self.upgrade(&mut turn, &target(&row)).await {
            Ok(_) | Err(RunStop::Interrupted) => {}
            Err(stop) => {
                // The node's failure, recorded as its turn's would be: nothing joins the
                // batch after it, and the run stops on it once the nodes in flight are done.
                if let Err(stop) = self.end_turn(&mut turn, Err(stop)) {
                    lock(&self.hold_others).get_or_insert(stop);
                }
            }
        }
    }

    /// What to download on the next node while this one reboots (nothing is installed,
    /// nothing is disrupted: its upgrade is then install time only); in a batch, on one of
    /// the nodes of the batch expected next: the command of the
    /// package manager its OS SKU label says (apt when unlabelled).
    async fn next_download(&self) -> Option<(NodeTarget, String)> {
        let mode = self.cfg.options.upgrade_mode;
        if mode == UpgradeMode::Security {
            return None;
        }
        let next = lock(&self.next).clone();
        let next = match next {
            Some(n) => n,
            // In a batch: the next zone's nodes (the zone's own are upgraded ahead).
            None => {
                let mut ahead = lock(&self.ahead);
                let at = ahead.iter().rposition(|a| matches!(a, Ahead::Download(_)))?;
                ahead.remove(at).node().to_string()
            }
        };
        let row = self.cluster.node(&next).await.ok().flatten()?;
        PackageManager::from_os_sku(row.os_sku.as_deref())
            .download_command(mode, self.cfg.dpkg_lock_timeout_secs)
            .map(|cmd| (target(&row), cmd))
    }

    /// Step 4: cordon (remembering whether somebody else had) and mark the node as ours.
    async fn cordon(&self, turn: &mut Turn<'_>, row: &NodeInfo) -> Result<(), RunStop> {
        let name = turn.name();
        self.fence("cordoning").await?;
        self.begin(turn, StepName::Cordon);
        if !turn.life.in_hand() {
            // Not out of service yet: a safe point. Its packages are upgraded.
            if let Some(stop) = self.record_stop(&format!("not cordoning node {name}")) {
                self.end(turn, StepOutcome::Skipped, "the run record cannot be written");
                return Err(stop);
            }
        }
        if let Err(error) = self.cluster.cordon(&name, &self.cfg.run_id).await {
            self.end(turn, StepOutcome::Failed, error.to_string());
            let release = self.release_if_in_hand(turn).await?;
            return Err(Halt::Cordon {
                node: name,
                error,
                release,
            }
            .into());
        }
        turn.life.cordoned(row.unschedulable, row.boot_id.clone())?;
        let cordoned_before = turn.life.cordoned_before();
        self.end(
            turn,
            StepOutcome::Ok,
            if cordoned_before {
                "already cordoned before aks-patch; it stays cordoned"
            } else {
                ""
            },
        );
        self.step(&name, NodeStep::Cordoned { cordoned_before });
        Ok(())
    }

    /// Step 5: drain, proving the lock before every eviction.
    async fn drain(&self, turn: &mut Turn<'_>) -> Result<(), RunStop> {
        let name = turn.name();
        self.begin(turn, StepName::Drain);
        let progress = self.progress;
        let node = name.clone();
        let tell = move |event: DrainEvent| {
            progress.tell(Event::Drain {
                node: node.clone(),
                event,
            })
        };
        self.wait_started(&name, Wait::Evictions, self.cfg.drain.timeout);
        let drained = self
            .cluster
            .drain(&name, &self.cfg.drain, &tell, &self.cancel, self.fence)
            .await;
        self.wait_done(&name);
        let report = match drained {
            Ok(report) => report,
            Err(stop) => {
                let text = match &stop {
                    DrainStop::Cancelled => "interrupted".to_string(),
                    DrainStop::Fenced(e) => e.to_string(),
                    DrainStop::Failed(e) => e.to_string(),
                };
                self.end(turn, StepOutcome::Failed, text);
                // A drain that did not finish: put the node back in service (unless it was
                // cordoned before us).
                let release = self.release(turn).await?;
                return Err(match stop {
                    DrainStop::Cancelled => {
                        self.step(&name, NodeStep::DrainInterrupted(release));
                        RunStop::Interrupted
                    }
                    DrainStop::Fenced(reason) => {
                        self.step(&name, NodeStep::DrainStopped(release));
                        self.lost(format!("stopped draining node {name}: {reason}"))
                    }
                    DrainStop::Failed(error) => Halt::Drain {
                        node: name,
                        error,
                        release,
                    }
                    .into(),
                });
            }
        };
        for (pod, w) in &report.warnings {
            self.tell(Event::Warning(Warning::DrainWarning {
                node: name.clone(),
                pod: pod.to_string(),
                warning: w.to_string(),
            }));
        }
        turn.life.drained(
            report.evicted.iter().map(Evicted::from).collect(),
            report.pdbs.clone(),
            report.workloads.clone(),
        )?;
        self.end(
            turn,
            StepOutcome::Ok,
            format!(
                "{} pod(s) evicted in {:.1}s",
                report.evicted.len(),
                report.elapsed.as_secs_f64()
            ),
        );
        self.step(
            &name,
            NodeStep::Drained {
                evicted: report.evicted.len(),
            },
        );
        Ok(())
    }

    /// Step 6: reboot, the lock proven once more; the connection dropping is expected.
    async fn reboot(&self, turn: &mut Turn<'_>, row: &NodeInfo) -> Result<(), RunStop> {
        let name = turn.name();
        if let Err(stop) = self.fence("rebooting").await {
            let release = self.release(turn).await?;
            self.step(&name, NodeStep::NotRebootingLockLost(release));
            return Err(stop);
        }
        self.begin(turn, StepName::Reboot);
        if let Err(error) = self.transport.reboot(&target(row)).await {
            self.end(turn, StepOutcome::Failed, error.to_string());
            let release = self.release(turn).await?;
            return Err(Halt::Reboot {
                node: name,
                error,
                release,
            }
            .into());
        }
        turn.life.reboot_sent()?;
        self.end(turn, StepOutcome::Ok, "reboot scheduled");
        self.step(&name, NodeStep::Rebooting);
        Ok(())
    }
}

/// Download the next node's packages ahead (see [`Engine::next_download`]); a failure changes
/// nothing (its upgrade downloads them).
async fn download_ahead(transport: &dyn Transport, progress: &dyn Progress, next: Option<(NodeTarget, String)>) {
    let Some((t, cmd)) = next else { return };
    match transport.prefetch(&t, &cmd).await {
        Ok(()) => progress.tell(Event::Step {
            node: t.name,
            step: NodeStep::PackagesDownloadedAhead,
        }),
        Err(e) => progress.tell(Event::Detail(Detail::PrefetchFailed {
            node: t.name,
            error: e.to_string(),
        })),
    }
}
