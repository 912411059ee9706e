//! The Kubernetes side of aks-patch: a client with our own retry policy, the node table as
//! `kubectl get nodes -o wide` shows it, cordon and drain as `kubectl drain` does them, the
//! cluster-wide Lease lock (and kured's lock annotation), and waiting for a rebooted node.
//!
//! This module is named `kube` like the crate it wraps: code in here refers to the crate as
//! `::kube::...`.

pub mod access;
pub mod bearer;
pub mod client;
pub mod drain;
pub mod error;
pub mod kured;
pub mod list;
pub mod lock;
pub mod mark;
pub mod nodes;
pub mod objects;
pub mod pending;
pub mod reboot;
pub mod run_records;
pub mod schedule;
pub mod snapshot;
pub mod watch;

pub use client::{client_from_config, client_from_kubeconfig_file, client_from_kubeconfig_yaml};
pub use drain::{
    cordon, drain, plan_drain, plan_drains, uncordon, wait_pdbs_healthy, BlockedPod, DrainError, DrainEvent,
    DrainOptions, DrainPlan, DrainReport, LeaveAlone, PdbInfo, PdbWaitError, PodRef, RefuseReason, SkipReason,
};
pub use error::{is_transient, KubeError};
pub use kured::{kured_lock_holder, release_kured_lock, take_kured_lock, KuredError, KuredLock};
pub use list::{list_all, list_paged};
pub use lock::{HolderInfo, LeaseState, Lock, LockError, LockGuard, LockOptions};
pub use nodes::{get_node, get_node_info, list_node_infos, list_nodes, NodeInfo, OsType, Readiness};
pub use objects::ObjectRef;
pub use reboot::{wait_for_reboot, NodeSeen, RebootError, RebootEvent};
pub use tokio_util::sync::CancellationToken;
