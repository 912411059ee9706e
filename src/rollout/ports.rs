//! What the rollout engine needs from the world, as small traits: the cluster (Kubernetes
//! API), the nodes (a transport that runs scripts on them), the lock (fencing) and where the
//! run record is kept. The real implementations are in [`super::live`] (and the file journal,
//! [`super::journal::Journal`]); the engine's unit tests use fakes. What the engine tells is
//! the [`super::progress`] port, and the time it reads is [`super::window::Clock`].
//!
//! Errors crossing these traits are [`PortError`]s: their [`FailureKind`] (the credentials
//! refused, not found, a conflict, a timeout, the other side unreachable, or another failure),
//! their words, and the error that caused them, so the engine tells a refusal of the
//! credentials from any other failure without knowing kube-rs or ssh. The lock's fence fails
//! with the lock's own error ([`FenceError`]).

use crate::kube::drain::{DrainEvent, DrainOptions, DrainReport, WorkloadRef};
use crate::kube::reboot::RebootEvent;
use crate::kube::schedule::Stranded;
use crate::kube::snapshot::ClusterSnapshot;
use crate::kube::{LockError, NodeInfo, ObjectRef};
use crate::node::Probe;
use crate::rollout::gate::Blocker;
use crate::rollout::journal::{JournalError, RunRecord};
use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// What kind of failure crossed a port: what the engine decides on (a refusal of the
/// credentials stops the run with exit 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureKind {
    /// The credentials were refused, or lack a permission.
    Auth,
    /// What was asked for does not exist.
    NotFound,
    /// A write lost a race with another writer.
    Conflict,
    /// Nothing answered in time.
    Timeout,
    /// The API server or the node could not be reached, or the connection dropped.
    Unreachable,
    /// Anything else: a refusal, a failed command, an answer that makes no sense.
    Failed,
}

/// A failure at a port: its kind, what failed (in words), and the error that caused it.
#[derive(Debug, Clone)]
pub struct PortError {
    pub kind: FailureKind,
    pub message: String,
    /// The error of the client or transport behind the port, when there is one.
    pub source: Option<Arc<dyn std::error::Error + Send + Sync + 'static>>,
}

impl std::fmt::Display for PortError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for PortError {
    /// The cause itself (not the `Arc` around it), so that it can be downcast.
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl PortError {
    /// A failure of kind [`FailureKind::Failed`] told in these words.
    pub fn new(message: impl Into<String>) -> PortError {
        PortError::of_kind(FailureKind::Failed, message)
    }

    /// The credentials were refused.
    pub fn auth(message: impl Into<String>) -> PortError {
        PortError::of_kind(FailureKind::Auth, message)
    }

    pub fn of_kind(kind: FailureKind, message: impl Into<String>) -> PortError {
        PortError {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// The failure `source` is, told in its words.
    pub fn caused_by(kind: FailureKind, source: impl std::error::Error + Send + Sync + 'static) -> PortError {
        PortError {
            kind,
            message: source.to_string(),
            source: Some(Arc::new(source)),
        }
    }

    /// The same failure (kind and cause), told in other words.
    pub fn reworded(self, message: impl Into<String>) -> PortError {
        PortError {
            message: message.into(),
            ..self
        }
    }

    /// The credentials were refused (exit 4).
    pub fn is_auth(&self) -> bool {
        self.kind == FailureKind::Auth
    }
}

/// Two failures are the same when they are of one kind and told alike (their causes are
/// not compared: they need not be comparable).
impl PartialEq for PortError {
    fn eq(&self, other: &PortError) -> bool {
        self.kind == other.kind && self.message == other.message
    }
}

impl Eq for PortError {}

/// Why the lock could not be proven ours: the lock's own error (lost, or not confirmed).
#[derive(Debug, Clone, thiserror::Error)]
#[error(transparent)]
pub struct FenceError(Arc<LockError>);

impl From<LockError> for FenceError {
    fn from(e: LockError) -> FenceError {
        FenceError(Arc::new(e))
    }
}

impl FenceError {
    pub fn lock_error(&self) -> &LockError {
        &self.0
    }
}

/// Told alike, the same (the lock's error is not comparable).
impl PartialEq for FenceError {
    fn eq(&self, other: &FenceError) -> bool {
        self.to_string() == other.to_string()
    }
}

impl Eq for FenceError {}

/// How a drain ended, when it did not finish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DrainStop {
    /// Ctrl-C: stopped promptly.
    Cancelled,
    /// The fence failed: the lock is not provably ours.
    Fenced(FenceError),
    /// Anything else (timeout, refusal, API error).
    Failed(PortError),
}

/// The cluster as the engine sees it.
#[async_trait]
pub trait Cluster: Send + Sync {
    /// The node now (`None`: it no longer exists).
    async fn node(&self, name: &str) -> Result<Option<NodeInfo>, PortError>;
    /// What blocks a disruption now ([`crate::rollout::gate`]).
    async fn blockers(&self, exempt: &[String], workloads: &[WorkloadRef]) -> Result<Vec<Blocker>, PortError>;
    /// The pods a drain of `node` would evict that no other schedulable Ready node would take
    /// ([`crate::kube::schedule`]), the other nodes as they are now.
    async fn stranded_pods(&self, node: &str, opts: &DrainOptions) -> Result<Vec<Stranded>, PortError>;
    /// The cluster in one read (lists of its nodes, pods and PDBs), to plan the next batch
    /// ([`crate::rollout::batches`]).
    async fn snapshot(&self) -> Result<ClusterSnapshot, PortError>;
    /// Cordon the node and mark it as in the hands of `run_id`.
    async fn cordon(&self, node: &str, run_id: &str) -> Result<(), PortError>;
    /// Remove the mark, and uncordon when `uncordon`.
    async fn release(&self, node: &str, uncordon: bool) -> Result<(), PortError>;
    /// Drain as `kubectl drain` does, checking `fence` before every eviction attempt.
    async fn drain(
        &self,
        node: &str,
        opts: &DrainOptions,
        progress: &(dyn Fn(DrainEvent) + Send + Sync),
        cancel: &CancellationToken,
        fence: &dyn Fence,
    ) -> Result<DrainReport, DrainStop>;
    /// Wait for a new bootID, Ready and no not-ready taints.
    async fn wait_for_reboot(
        &self,
        node: &str,
        old_boot_id: &str,
        timeout: Duration,
        progress: &(dyn Fn(RebootEvent) + Send + Sync),
    ) -> Result<NodeInfo, PortError>;
    /// Wait until something behind these blockers may have changed (a watch on the nodes and
    /// workloads they name), at most `max`. The caller checks again either way.
    async fn blockers_changed(&self, blockers: &[Blocker], max: Duration) {
        let _ = blockers;
        tokio::time::sleep(max).await;
    }
    /// Wait until these PodDisruptionBudgets allow disruptions again.
    async fn wait_pdbs(&self, pdbs: &[ObjectRef], timeout: Duration) -> Result<(), PortError>;
    /// Put the pending taint ([`crate::kube::pending`], `PreferNoSchedule`) valued `run_id` on
    /// these nodes, keeping their other taints: the pods drained later prefer the nodes
    /// already patched. Every node is tried; the first failure is returned.
    async fn mark_pending(&self, nodes: &[String], run_id: &str) -> Result<(), PortError>;
    /// Remove the pending taint (whichever run put it there) from these nodes; a node that is
    /// gone is fine. Every node is tried; the first failure is returned.
    async fn clear_pending(&self, nodes: &[String]) -> Result<(), PortError>;
    /// Take kured's lock for `node` if kured is installed: `true` when taken.
    async fn take_kured_lock(&self, node: &str, ttl: Duration) -> Result<bool, PortError>;
    async fn release_kured_lock(&self, node: &str) -> Result<(), PortError>;
}

/// The lock, as far as the engine uses it: prove it is ours before a destructive step.
#[async_trait]
pub trait Fence: Send + Sync {
    /// `Err` when it cannot be proven ours (renewed now, or less than `max_age` ago).
    async fn fence(&self, max_age: Duration) -> Result<(), FenceError>;
    /// Why it was lost, once it was.
    fn lost_reason(&self) -> Option<String>;
    /// It was lost because the API server refused the credentials.
    fn auth_failed(&self) -> bool;
}

pub use crate::node::NodeTarget;

/// How the engine reaches the nodes: read-only probes, a detached upgrade, a reboot.
#[async_trait]
pub trait Transport: Send + Sync {
    /// The read-only probe: kernel, pending updates, reboot marker.
    async fn probe(&self, node: &NodeTarget) -> Result<Probe, PortError>;
    /// Start `command` detached on the node (it survives a dropped connection and our
    /// signals), its output and exit code kept under `run_id`.
    async fn start_upgrade(&self, node: &NodeTarget, command: &str, run_id: &str) -> Result<(), PortError>;
    /// Wait up to `max` for the detached upgrade: `Some((log, exit code))` once it ended,
    /// `None` while it runs.
    async fn wait_upgrade(
        &self,
        node: &NodeTarget,
        run_id: &str,
        max: Duration,
    ) -> Result<Option<(String, i32)>, PortError>;
    /// What the running upgrade on `node` was waiting for at the last [`Self::wait_upgrade`]
    /// that found it running: the dpkg lock and who holds it (`None`: nothing, or unknown).
    fn upgrade_lock_wait(&self, node: &NodeTarget) -> Option<crate::node::PackageLockWait> {
        let _ = node;
        None
    }
    /// Run a non-disruptive command to its end (downloading the next node's packages).
    async fn prefetch(&self, node: &NodeTarget, command: &str) -> Result<(), PortError>;
    /// Start a reboot; a dropped connection is expected.
    async fn reboot(&self, node: &NodeTarget) -> Result<(), PortError>;
    /// Forget any connection to the node (it is rebooting).
    async fn disconnect(&self, node: &NodeTarget);
}

/// Where the run record is kept: written after every step, before the next side effect. A
/// file per run ([`super::journal::Journal`]); in the cluster, an object.
pub trait RecordStore: Send + Sync {
    fn save(&self, rec: &RunRecord) -> Result<(), JournalError>;
}
