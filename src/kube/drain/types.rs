//! What a drain is asked to do, what it decides about each pod, how it progresses and what
//! it did.

pub use super::super::objects::{ObjectRef, PodRef};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use serde::Serialize;
use std::fmt;
use std::time::Duration;

/// The annotation the kubelet puts on the API's copy of a static pod.
pub const MIRROR_POD_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// How a drain behaves: the flags of `kubectl drain` that aks-patch offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrainOptions {
    /// Evict pods with emptyDir volumes (their data is lost).
    pub delete_emptydir_data: bool,
    /// Evict pods with no controller (they are not recreated), and pods whose DaemonSet is gone.
    pub force: bool,
    /// Grace period for evicted pods; `None` leaves each pod's own.
    pub grace_period: Option<i64>,
    /// The whole drain (evictions and waiting for pods to go) must finish within this.
    pub timeout: Duration,
    /// Wait between evictions refused by a PodDisruptionBudget (kubectl: 5 s).
    pub retry_interval: Duration,
    /// How often to check whether evicted pods are gone (kubectl: 1 s).
    pub poll_interval: Duration,
    /// Pods terminating for longer than this are skipped entirely, not waited for
    /// (kubectl's `--skip-wait-for-delete-timeout`). `None`: wait for every one.
    pub skip_wait_for_delete_timeout: Option<Duration>,
    /// Pods the drain leaves to whoever made them (they delete them themselves).
    pub leave_alone: Vec<LeaveAlone>,
}

impl Default for DrainOptions {
    fn default() -> Self {
        DrainOptions {
            delete_emptydir_data: false,
            force: false,
            grace_period: None,
            timeout: Duration::from_secs(600),
            retry_interval: Duration::from_secs(5),
            poll_interval: Duration::from_secs(1),
            skip_wait_for_delete_timeout: None,
            leave_alone: vec![],
        }
    }
}

/// Pods a drain leaves alone because whoever made them deletes them itself (aks-patch's own
/// node-shell pods): those carrying every label of `labels` (a value of `None`: the key,
/// whatever its value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaveAlone {
    pub labels: Vec<(String, Option<String>)>,
    /// Why, as the drain says it of each such pod.
    pub why: String,
}

impl LeaveAlone {
    /// Whether `pod` is one of these (never, without labels to match).
    pub fn matches(&self, pod: &Pod) -> bool {
        let Some(have) = pod.metadata.labels.as_ref() else {
            return false;
        };
        !self.labels.is_empty()
            && self.labels.iter().all(|(key, value)| match value {
                Some(v) => have.get(key) == Some(v),
                None => have.contains_key(key),
            })
    }
}

/// Why a pod on the node is left alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "camelCase")]
pub enum SkipReason {
    /// A static pod's mirror: the kubelet runs it, the API cannot evict it.
    MirrorPod,
    /// Managed by a DaemonSet, which would put it straight back.
    DaemonSet { daemonset: String },
    /// Already being deleted (the drain still waits for it to go, unless it has been
    /// terminating longer than `skip_wait_for_delete_timeout`).
    Terminating { since: Option<Timestamp>, waited_for: bool },
    /// The drain was told to leave it alone ([`DrainOptions::leave_alone`]), for this reason.
    LeftAlone { why: String },
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::MirrorPod => write!(f, "mirror pod of a static pod (run by the kubelet)"),
            SkipReason::DaemonSet { daemonset } => write!(f, "managed by DaemonSet {daemonset}"),
            SkipReason::Terminating { waited_for: true, .. } => write!(f, "already terminating (waited for)"),
            SkipReason::Terminating { .. } => write!(f, "terminating for too long (not waited for)"),
            SkipReason::LeftAlone { why } => write!(f, "{why}"),
        }
    }
}

/// Why a pod cannot be evicted without the operator's consent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "camelCase")]
pub enum RefuseReason {
    /// It mounts an emptyDir volume whose data would be lost.
    EmptyDir,
    /// It has no controller: nothing would recreate it.
    NoController,
    /// Its DaemonSet no longer exists.
    DaemonSetMissing { daemonset: String },
}

impl RefuseReason {
    /// The flag that gives consent.
    pub fn flag(&self) -> &'static str {
        match self {
            RefuseReason::EmptyDir => "--delete-emptydir-data",
            RefuseReason::NoController | RefuseReason::DaemonSetMissing { .. } => "--force",
        }
    }
}

impl fmt::Display for RefuseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RefuseReason::EmptyDir => write!(f, "uses emptyDir volumes whose data would be lost"),
            RefuseReason::NoController => write!(f, "has no controller, so nothing would recreate it"),
            RefuseReason::DaemonSetMissing { daemonset } => {
                write!(f, "belongs to DaemonSet {daemonset}, which no longer exists")
            }
        }
    }
}

/// The controller of an evicted pod (ReplicaSet, StatefulSet, ...): the workload that must
/// be Ready again before the next node is disrupted.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadRef {
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

impl fmt::Display for WorkloadRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
    }
}

/// Progress of a drain, for the progress display.
#[derive(Debug, Clone, PartialEq)]
pub enum DrainEvent {
    /// The plan: how many pods will be evicted, how many are left alone.
    Planned {
        evict: usize,
        skipped: usize,
    },
    Evicting {
        pod: PodRef,
    },
    /// The API accepted the eviction; the pod is terminating.
    Evicted {
        pod: PodRef,
    },
    /// A PodDisruptionBudget refused the eviction (429); retrying after `retry_in`.
    EvictionRefused {
        pod: PodRef,
        pdb: Option<String>,
        message: String,
        retry_in: Duration,
    },
    /// A transient API error; retrying.
    Retrying {
        pod: PodRef,
        error: String,
    },
    /// The pod was gone before it was evicted (404).
    AlreadyGone {
        pod: PodRef,
    },
    /// The pod is gone (or replaced by a new one of the same name).
    PodGone {
        pod: PodRef,
    },
}

/// A pod a drain evicted, and when it was created (`metadata.creationTimestamp`): a run
/// counts a pod created after it began, once evicted, as a pod that moved again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EvictedPod {
    #[serde(flatten)]
    pub pod: PodRef,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<Timestamp>,
}

impl EvictedPod {
    /// The pod, with its creation time as the API server gave it.
    pub fn of(pod: &Pod) -> EvictedPod {
        EvictedPod {
            pod: PodRef::of(pod),
            created: pod.metadata.creation_timestamp.as_ref().map(|t| t.0),
        }
    }
}

impl fmt::Display for EvictedPod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.pod.fmt(f)
    }
}

/// What a finished drain did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DrainReport {
    pub node: String,
    pub evicted: Vec<EvictedPod>,
    pub skipped: Vec<(PodRef, SkipReason)>,
    pub warnings: Vec<(PodRef, String)>,
    /// The PDBs covering the evicted pods: wait for them with
    /// [`wait_pdbs_healthy`](super::pdb::wait_pdbs_healthy) before draining the next node.
    pub pdbs: Vec<ObjectRef>,
    /// The controllers of the evicted pods.
    pub workloads: Vec<WorkloadRef>,
    #[serde(with = "secs")]
    pub elapsed: Duration,
}

mod secs {
    pub fn serialize<S: serde::Serializer>(d: &std::time::Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64((d.as_secs_f64() * 10.0).round() / 10.0)
    }
}

/// A pod the drain could not get rid of in time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BlockedPod {
    pub pod: PodRef,
    /// `namespace/name` of the PodDisruptionBudgets that block it.
    pub pdbs: Vec<String>,
    /// The API server's last refusal.
    pub message: String,
    /// Those budgets that, as configured, can never allow an eviction:
    /// `namespace/name (why)` (waiting longer cannot help).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub never_allows: Vec<String>,
}
