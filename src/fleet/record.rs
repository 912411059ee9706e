//! The fleet run record: the stages, each cluster's state and the ids of its `apply` runs.
//!
//! Written before each cluster starts and after it ends (`fleet-runs/<id>.json` in the state
//! directory, atomically), so that `fleet apply --resume` knows which clusters finished, which
//! ran and stopped (resumed with `apply --resume`), and which never started. Each cluster's
//! own run record stays where `apply` keeps it; this one only points at them.

use super::stages::StagePlan;
use super::ClusterRef;
use crate::rollout::journal::{self, Time};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The layout of the fleet run record.
pub const FLEET_SCHEMA_VERSION: u32 = 1;

/// Where a cluster of a fleet run is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ClusterState {
    /// Not started.
    Pending,
    /// Its rollout is running (or the process died while it was).
    Running,
    /// Its rollout succeeded.
    Succeeded,
    /// Its rollout failed (its record says why).
    Failed,
    /// Its rollout stopped at a safe point (Ctrl-C, or another cluster of its stage failed).
    Stopped,
}

/// Where a stage is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum StageState {
    Pending,
    Running,
    Succeeded,
    Failed,
    Stopped,
}

/// How the fleet run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum FleetResult {
    /// Every stage succeeded.
    Succeeded,
    /// A cluster failed; the later stages did not start.
    Failed,
    /// Ctrl-C (or SIGTERM): every cluster stopped at its safe point.
    Interrupted,
    /// The fleet run record could not be written: stopped before the next cluster.
    RecordFailed,
}

/// One cluster's part of the fleet run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterRun {
    pub cluster: ClusterRef,
    pub state: ClusterState,
    /// The ids of its `apply` runs, first to last (a resumed one adds its own).
    #[serde(default)]
    pub run_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Time>,
}

/// One stage of the fleet run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StageRun {
    pub name: String,
    pub state: StageState,
    /// The soak after it, in seconds, when its definition has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_after_seconds: Option<u64>,
    pub clusters: Vec<ClusterRun>,
}

/// The fleet run record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FleetRunRecord {
    pub schema_version: u32,
    pub fleet_run_id: String,
    pub started_at: Time,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Time>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<FleetResult>,
    /// Clusters at once, at most.
    pub max_clusters: usize,
    /// A failed cluster lets the others of its stage go on.
    pub continue_stage: bool,
    /// `--stage-wait`, in seconds.
    pub stage_wait_seconds: u64,
    pub stages: Vec<StageRun>,
    /// Clusters chosen that no stage takes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unstaged: Vec<ClusterRef>,
}

impl FleetRunRecord {
    /// A new record of `plan`: every stage and cluster pending.
    pub fn new(plan: &StagePlan, max_clusters: usize, continue_stage: bool, stage_wait: Duration) -> FleetRunRecord {
        FleetRunRecord {
            schema_version: FLEET_SCHEMA_VERSION,
            fleet_run_id: journal::new_run_id(),
            started_at: journal::now(),
            finished_at: None,
            result: None,
            max_clusters,
            continue_stage,
            stage_wait_seconds: stage_wait.as_secs(),
            stages: plan
                .stages
                .iter()
                .map(|s| StageRun {
                    name: s.name.clone(),
                    state: StageState::Pending,
                    wait_after_seconds: s.wait_after.map(|d| d.as_secs()),
                    clusters: s
                        .clusters
                        .iter()
                        .map(|c| ClusterRun {
                            cluster: c.clone(),
                            state: ClusterState::Pending,
                            run_ids: vec![],
                            exit_code: None,
                            error: None,
                            started_at: None,
                            finished_at: None,
                        })
                        .collect(),
                })
                .collect(),
            unstaged: plan.unstaged.clone(),
        }
    }

    /// Not finished, or not succeeded: `--resume` continues it.
    pub fn unfinished(&self) -> bool {
        self.result != Some(FleetResult::Succeeded)
    }

    /// Every cluster of the run, stage after stage.
    pub fn clusters(&self) -> impl Iterator<Item = &ClusterRun> {
        self.stages.iter().flat_map(|s| s.clusters.iter())
    }
}

/// The fleet run record could not be kept.
#[derive(Debug, thiserror::Error)]
pub enum FleetRecordError {
    #[error("cannot write the fleet run record {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read the fleet run record {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the fleet run record {} is damaged", path.display())]
    Damaged {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// Where fleet run records are kept: the scheduler's port.
pub trait FleetJournal: Send + Sync {
    fn save(&self, record: &FleetRunRecord) -> Result<(), FleetRecordError>;
}

/// A directory of fleet run records, one file a run.
#[derive(Debug, Clone)]
pub struct FleetRuns {
    dir: PathBuf,
}

impl FleetRuns {
    pub fn new(dir: impl Into<PathBuf>) -> FleetRuns {
        FleetRuns { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    /// The newest fleet run record (run ids sort by their start time).
    pub fn latest(&self) -> Result<Option<FleetRunRecord>, FleetRecordError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(FleetRecordError::Read {
                    path: self.dir.clone(),
                    source: e,
                })
            }
        };
        let mut names: Vec<String> = entries
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().into_string().ok())
            .filter(|n| n.ends_with(".json") && !n.starts_with('.'))
            .collect();
        names.sort();
        let Some(last) = names.pop() else { return Ok(None) };
        let path = self.dir.join(last);
        let bytes = std::fs::read(&path).map_err(|e| FleetRecordError::Read {
            path: path.clone(),
            source: e,
        })?;
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| FleetRecordError::Damaged { path, source: e })
    }
}

impl FleetJournal for FleetRuns {
    fn save(&self, record: &FleetRunRecord) -> Result<(), FleetRecordError> {
        let path = self.path(&record.fleet_run_id);
        let write = || -> std::io::Result<()> {
            std::fs::create_dir_all(&self.dir)?;
            let tmp = self.dir.join(format!(".{}.tmp", record.fleet_run_id));
            let mut f = std::fs::File::create(&tmp)?;
            std::io::Write::write_all(
                &mut f,
                &serde_json::to_vec_pretty(record).map_err(std::io::Error::other)?,
            )?;
            f.sync_all()?;
            std::fs::rename(&tmp, &path)
        };
        write().map_err(|e| FleetRecordError::Write { path, source: e })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::azure::ClusterId;

    #[test]
    fn the_newest_record_is_read_back_as_written() {
        let dir = tempfile::tempdir().unwrap();
        let runs = FleetRuns::new(dir.path().join("fleet-runs"));
        assert_eq!(runs.latest().unwrap(), None);
        let plan = super::super::stages::single(vec![ClusterRef::new(ClusterId::new("s", "rg", "c"))]);
        let mut a = FleetRunRecord::new(&plan, 2, false, Duration::from_secs(30));
        a.fleet_run_id = "20260101T000000Z-0001".into();
        let mut b = a.clone();
        b.fleet_run_id = "20260102T000000Z-0001".into();
        b.stages[0].clusters[0].run_ids.push("r1".into());
        runs.save(&b).unwrap();
        runs.save(&a).unwrap();
        let got = runs.latest().unwrap().unwrap();
        assert_eq!(got, b);
        assert!(got.unfinished());
    }
}
