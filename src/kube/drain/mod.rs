//! Cordon, uncordon and drain, as `kubectl drain` does them (kubectl's `pkg/drain`).
//! [`types`] says what a drain is asked to do and what it did, [`plan`] decides what happens
//! to each pod, [`pdb`] judges the budgets, [`cordon`](mod@cordon) marks and cordons, [`evict`] is the
//! eviction loop and [`error`] says, in kubectl's words, why a drain failed.
//!
//! - The node's pods are listed in all namespaces with `fieldSelector=spec.nodeName=NODE`,
//!   in pages of 500.
//!   Planning many drains at once ([`plan_drains`], the pre-flight's) reads the cluster with
//!   lists instead ([`super::snapshot`], the finished pods, each DaemonSet once) and decides the
//!   same way ([`plan_of`]).
//! - Filters, in kubectl's order, the first that says "no" deciding: DaemonSet pods are
//!   skipped (a pod whose DaemonSet is gone is refused, or evicted with `force`); mirror pods
//!   are skipped; pods with `emptyDir` volumes need `delete_emptydir_data`; pods with no
//!   controller need `force`. Finished pods (Succeeded/Failed) are evicted without those
//!   checks. Pods already terminating are not evicted again: the drain waits for them. Pods
//!   the caller says to leave alone ([`DrainOptions::leave_alone`]) are skipped first.
//! - Evictions are typed `policy/v1` Evictions posted to the pod's `eviction` subresource
//!   (not kube-rs's `EvictParams`, which sends its delete options under the wrong key), all
//!   pods at once as kubectl does. 429 (a PodDisruptionBudget forbids it now) is retried as
//!   soon as the budget allows a disruption again, at the latest every `retry_interval`,
//!   until `timeout`; a fence (aks-patch's lock) is checked before every attempt; 500 "more
//!   than one PodDisruptionBudget" is fatal at once; 404 means the pod is already gone; other 5xx and reset connections are retried with
//!   the one policy of [`crate::retry`], like every read of the drain.
//! - Then each evicted pod must be gone, or replaced by a pod with a new UID, within the same
//!   `timeout`.

pub mod cordon;
pub mod error;
pub mod evict;
pub mod pdb;
pub mod plan;
pub mod types;

pub use super::mark::{in_progress_run, put_back_by_hand, IN_PROGRESS_ANNOTATION};
pub use cordon::{cordon, cordon_marked, release_node, uncordon};
pub use error::DrainError;
pub use evict::{drain, drain_fenced};
pub use pdb::{never_allows, wait_pdbs_healthy, PdbInfo, PdbWaitError};
pub use plan::{
    list_finished_pods, list_node_pods, plan_drain, plan_drains, plan_of, selector_matches, DaemonSets, DrainPlan,
};
pub use types::{
    BlockedPod, DrainEvent, DrainOptions, DrainReport, EvictedPod, LeaveAlone, PodRef, RefuseReason, SkipReason,
    WorkloadRef, MIRROR_POD_ANNOTATION,
};
