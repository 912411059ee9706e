//! The fleet scheduler: stages one after the other, the clusters of a stage at once (up to
//! `--max-clusters`), each through the [`ClusterRollout`] port.
//!
//! - A cluster that fails stops the later stages. The other clusters of its stage are told to
//!   stop at their safe point (their `apply` finishes the node in hand), and those not started
//!   yet do not start, unless `--continue-stage`.
//! - Ctrl-C (the `interrupt` token) stops every cluster at its safe point; nothing new starts.
//! - After a stage that succeeded, the next waits for the stage's own soak (a strategy's
//!   `afterStageWaitInSeconds`), else `--stage-wait`.
//! - The fleet run record is written before each cluster starts and after it ends. Resumed
//!   (the same record again): finished clusters and stages are skipped, clusters that ran are
//!   resumed (`apply --resume`), the others start.

use super::record::{ClusterState, FleetJournal, FleetRecordError, FleetResult, FleetRunRecord, StageState};
use super::ClusterRef;
use crate::rollout::journal;
use async_trait::async_trait;
use futures::StreamExt;
use std::sync::Mutex;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How a cluster's rollout is started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterStart {
    /// Continue its unfinished run (`apply --resume`) rather than start a new one.
    pub resume: bool,
}

/// How a cluster's rollout ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClusterOutcome {
    Succeeded,
    Failed,
    /// Stopped at a safe point, as asked (Ctrl-C, or another cluster of its stage failed).
    Stopped,
}

/// What a cluster's rollout reports back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterResult {
    pub outcome: ClusterOutcome,
    /// The id of its `apply` run, when one was started.
    pub run_id: Option<String>,
    /// Its `apply`'s exit code.
    pub exit_code: i32,
    /// Why it failed or stopped, in words.
    pub message: Option<String>,
}

/// Runs exactly the rollout of `apply` on one cluster. `stop` asks it to stop at its next safe
/// point; it returns once the cluster is left safe.
#[async_trait]
pub trait ClusterRollout: Send + Sync {
    async fn run(&self, cluster: &ClusterRef, start: ClusterStart, stop: CancellationToken) -> ClusterResult;
}

/// What the scheduler tells while it runs (`output` puts it into words).
pub trait FleetProgress: Send + Sync {
    fn stage_started(&self, index: usize, of: usize, name: &str, clusters: &[ClusterRef]);
    fn cluster_started(&self, stage: &str, cluster: &ClusterRef, start: &ClusterStart);
    fn cluster_finished(&self, stage: &str, cluster: &ClusterRef, result: &ClusterResult);
    /// The other clusters of the stage are told to stop, because `failed` failed.
    fn stage_stopping(&self, stage: &str, failed: &ClusterRef);
    fn stage_finished(&self, index: usize, of: usize, name: &str, state: StageState);
    fn soaking(&self, after: &str, wait: Duration);
}

/// The scheduler's knobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScheduleOptions {
    /// Clusters at once, at most (at least 1).
    pub max_clusters: usize,
    pub continue_stage: bool,
    /// The soak between stages whose definition has none.
    pub stage_wait: Duration,
}

impl ScheduleOptions {
    pub fn of(record: &FleetRunRecord) -> ScheduleOptions {
        ScheduleOptions {
            max_clusters: record.max_clusters.max(1),
            continue_stage: record.continue_stage,
            stage_wait: Duration::from_secs(record.stage_wait_seconds),
        }
    }
}

/// The ports the scheduler works through.
pub struct FleetPorts<'a> {
    pub rollout: &'a dyn ClusterRollout,
    pub journal: &'a dyn FleetJournal,
    pub progress: &'a dyn FleetProgress,
}

/// Run (or continue) the fleet run of `record`; it ends with the record's `result` set and
/// saved. An error: the record could not be written (the clusters running then were let
/// finish; nothing new started).
pub async fn run(
    record: FleetRunRecord,
    ports: &FleetPorts<'_>,
    interrupt: CancellationToken,
) -> Result<FleetRunRecord, (FleetRunRecord, FleetRecordError)> {
    let opts = ScheduleOptions::of(&record);
    let shared = Shared {
        record: Mutex::new(record),
        journal: ports.journal,
        write_error: Mutex::new(None),
    };
    let of = shared.with(|r| r.stages.len());
    let mut result = FleetResult::Succeeded;
    for index in 0..of {
        let (name, state, wait_after) = shared.with(|r| {
            let s = &r.stages[index];
            (s.name.clone(), s.state, s.wait_after_seconds.map(Duration::from_secs))
        });
        if state == StageState::Succeeded {
            continue;
        }
        if interrupt.is_cancelled() {
            result = FleetResult::Interrupted;
            break;
        }
        let state = run_stage(&shared, ports, opts, index, of, &interrupt).await;
        ports.progress.stage_finished(index + 1, of, &name, state);
        if shared.failed_to_write() {
            result = FleetResult::RecordFailed;
            break;
        }
        match state {
            StageState::Succeeded => {}
            StageState::Failed => {
                result = FleetResult::Failed;
                break;
            }
            _ => {
                result = FleetResult::Interrupted;
                break;
            }
        }
        let wait = wait_after.unwrap_or(opts.stage_wait);
        if index + 1 < of && !wait.is_zero() {
            ports.progress.soaking(&name, wait);
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = interrupt.cancelled() => {
                    result = FleetResult::Interrupted;
                    break;
                }
            }
        }
    }
    shared.with(|r| {
        r.result = Some(result);
        r.finished_at = Some(journal::now());
    });
    shared.save();
    let Shared {
        record, write_error, ..
    } = shared;
    let record = record.into_inner().unwrap_or_else(|p| p.into_inner());
    match write_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        Some(e) => Err((record, e)),
        None => Ok(record),
    }
}

struct Shared<'a> {
    record: Mutex<FleetRunRecord>,
    journal: &'a dyn FleetJournal,
    write_error: Mutex<Option<FleetRecordError>>,
}

impl Shared<'_> {
    fn with<R>(&self, f: impl FnOnce(&mut FleetRunRecord) -> R) -> R {
        f(&mut self.record.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// Change the record and write it; a failed write is kept (the first one).
    fn update(&self, f: impl FnOnce(&mut FleetRunRecord)) {
        let mut r = self.record.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut r);
        if let Err(e) = self.journal.save(&r) {
            let mut slot = self.write_error.lock().unwrap_or_else(|p| p.into_inner());
            slot.get_or_insert(e);
        }
    }

    fn save(&self) {
        self.update(|_| {});
    }

    fn failed_to_write(&self) -> bool {
        self.write_error.lock().unwrap_or_else(|p| p.into_inner()).is_some()
    }
}

async fn run_stage(
    shared: &Shared<'_>,
    ports: &FleetPorts<'_>,
    opts: ScheduleOptions,
    index: usize,
    of: usize,
    interrupt: &CancellationToken,
) -> StageState {
    let (name, todo, all) = shared.with(|r| {
        let s = &r.stages[index];
        let todo: Vec<usize> = (0..s.clusters.len())
            .filter(|i| s.clusters[*i].state != ClusterState::Succeeded)
            .collect();
        let all: Vec<ClusterRef> = s.clusters.iter().map(|c| c.cluster.clone()).collect();
        (s.name.clone(), todo, all)
    });
    shared.update(|r| r.stages[index].state = StageState::Running);
    ports.progress.stage_started(index + 1, of, &name, &all);
    // Told to the clusters of this stage: Ctrl-C, or another cluster of the stage failed.
    let stage_stop = interrupt.child_token();
    let name = name.as_str();
    let stage_stop_ref = &stage_stop;
    futures::stream::iter(todo)
        .map(|ci| async move {
            if stage_stop_ref.is_cancelled() || shared.failed_to_write() {
                return;
            }
            let (cluster, ran_before) = shared.with(|r| {
                let c = &r.stages[index].clusters[ci];
                (c.cluster.clone(), c.state != ClusterState::Pending)
            });
            let start = ClusterStart { resume: ran_before };
            shared.update(|r| {
                let c = &mut r.stages[index].clusters[ci];
                c.state = ClusterState::Running;
                c.started_at = Some(journal::now());
                c.finished_at = None;
                c.error = None;
                c.exit_code = None;
            });
            if shared.failed_to_write() {
                // Not started: the record could not say it was.
                shared.with(|r| {
                    r.stages[index].clusters[ci].state = if ran_before {
                        ClusterState::Stopped
                    } else {
                        ClusterState::Pending
                    }
                });
                return;
            }
            ports.progress.cluster_started(name, &cluster, &start);
            let result = ports.rollout.run(&cluster, start, stage_stop_ref.clone()).await;
            shared.update(|r| {
                let c = &mut r.stages[index].clusters[ci];
                c.state = match result.outcome {
                    ClusterOutcome::Succeeded => ClusterState::Succeeded,
                    ClusterOutcome::Failed => ClusterState::Failed,
                    ClusterOutcome::Stopped => ClusterState::Stopped,
                };
                if let Some(id) = &result.run_id {
                    if !c.run_ids.contains(id) {
                        c.run_ids.push(id.clone());
                    }
                }
                c.exit_code = Some(result.exit_code);
                c.error = result.message.clone();
                c.finished_at = Some(journal::now());
            });
            ports.progress.cluster_finished(name, &cluster, &result);
            if result.outcome == ClusterOutcome::Failed && !opts.continue_stage && !stage_stop_ref.is_cancelled() {
                ports.progress.stage_stopping(name, &cluster);
                stage_stop_ref.cancel();
            }
        })
        .buffer_unordered(opts.max_clusters.max(1))
        .collect::<Vec<()>>()
        .await;
    let state = shared.with(|r| {
        let s = &r.stages[index];
        if s.clusters.iter().any(|c| c.state == ClusterState::Failed) {
            StageState::Failed
        } else if s.clusters.iter().all(|c| c.state == ClusterState::Succeeded) {
            StageState::Succeeded
        } else {
            StageState::Stopped
        }
    });
    shared.update(|r| r.stages[index].state = state);
    state
}

#[cfg(test)]
mod tests;
