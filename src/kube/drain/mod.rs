//! Cordon, uncordon and drain, as `kubectl drain` does them (kubectl's `pkg/drain`).
//! [`plan`] decides what happens to each pod, [`pdb`] judges the budgets, [`cordon`]
//! marks and cordons; this module holds the types and the eviction loop.
//!
//! - The node's pods are listed in all namespaces with `fieldSelector=spec.nodeName=NODE`,
//!   in pages of 500.
//! - Filters, in kubectl's order, the first that says "no" deciding: DaemonSet pods are
//!   skipped (a pod whose DaemonSet is gone is refused, or evicted with `force`); mirror pods
//!   are skipped; pods with `emptyDir` volumes need `delete_emptydir_data`; pods with no
//!   controller need `force`. Finished pods (Succeeded/Failed) are evicted without those
//!   checks. Pods already terminating are not evicted again: the drain waits for them.
//! - Evictions are typed `policy/v1` Evictions posted to the pod's `eviction` subresource
//!   (not kube-rs's `EvictParams`, which sends its delete options under the wrong key), all
//!   pods at once as kubectl does. 429 (a PodDisruptionBudget forbids it now) is retried as
//!   soon as the budget allows a disruption again, at the latest every `retry_interval`,
//!   until `timeout`; a fence (aks-patch's lock) is checked before every attempt; 500 "more than one PodDisruptionBudget" is fatal at
//!   once; 404 means the pod is already gone; other 5xx and reset connections are retried with
//!   the one policy of [`super::retry`], like every read of the drain.
//! - Then each evicted pod must be gone, or replaced by a pod with a new UID, within the same
//!   `timeout`.

pub mod cordon;
pub mod pdb;
pub mod plan;

pub use cordon::*;
pub use pdb::*;
pub use plan::*;
use plan::{controller_of, list_pdbs, pdb_name, pdbs_covering};

use super::error::{describe_kube_error, KubeError};
use super::list::list_all;
use super::retry::{with_retry, Backoff, RetryPolicy};
use ::kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use ::kube::Client;
use chrono::{DateTime, Utc};
use futures::future::join_all;
use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::policy::v1::{Eviction, PodDisruptionBudget};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{DeleteOptions, LabelSelector, ObjectMeta};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// The annotation aks-patch puts on a node it has taken out of service (from cordon to
/// uncordon), with its run id: any run, a human, or this run after a lost lock can see that
/// the node is out.
pub const IN_PROGRESS_ANNOTATION: &str = "aks-patch.io/in-progress";

/// The commands that put `nodes` back in service by hand: uncordon, and remove the
/// in-progress mark (without which every later run's health gate counts the node as out).
pub fn put_back_by_hand(nodes: &[&str]) -> String {
    let names = nodes.join(" ");
    format!("kubectl uncordon {names} && kubectl annotate node {names} {IN_PROGRESS_ANNOTATION}-")
}

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
        }
    }
}

/// A pod, by namespace, name and UID.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct PodRef {
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

impl PodRef {
    pub fn of(pod: &Pod) -> PodRef {
        PodRef {
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            name: pod.metadata.name.clone().unwrap_or_default(),
            uid: pod.metadata.uid.clone().unwrap_or_default(),
        }
    }
}

impl fmt::Display for PodRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
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
    Terminating {
        since: Option<DateTime<Utc>>,
        waited_for: bool,
    },
    /// aks-patch's own node-shell pod (`--via kube`): aks-patch deletes it itself.
    NodeShell,
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::MirrorPod => write!(f, "mirror pod of a static pod (run by the kubelet)"),
            SkipReason::DaemonSet { daemonset } => write!(f, "managed by DaemonSet {daemonset}"),
            SkipReason::Terminating { waited_for: true, .. } => write!(f, "already terminating (waited for)"),
            SkipReason::Terminating { .. } => write!(f, "terminating for too long (not waited for)"),
            SkipReason::NodeShell => write!(f, "aks-patch's own node-shell pod (deleted by aks-patch)"),
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

/// What draining a node would do, decided as kubectl decides it.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DrainPlan {
    pub node: String,
    /// Pods to evict.
    pub evict: Vec<PodRef>,
    /// Pods left alone, and why.
    pub skipped: Vec<(PodRef, SkipReason)>,
    /// Pods that need consent (`delete_emptydir_data`, `force`); the drain refuses while any.
    pub refused: Vec<(PodRef, RefuseReason)>,
    /// Pods evicted with a warning (emptyDir data deleted, unmanaged pod deleted, ...).
    pub warnings: Vec<(PodRef, String)>,
    /// PodDisruptionBudgets covering the pods to evict, as they are now.
    pub pdbs: Vec<PdbInfo>,
    #[serde(skip)]
    evict_pods: Vec<Pod>,
    #[serde(skip)]
    wait_pods: Vec<Pod>,
    #[serde(skip)]
    all_pdbs: Vec<PodDisruptionBudget>,
}

impl DrainPlan {
    /// The PDBs that would refuse an eviction right now.
    pub fn blocking_pdbs(&self) -> Vec<&PdbInfo> {
        self.pdbs.iter().filter(|p| p.disruptions_allowed <= 0).collect()
    }

    /// The PDBs that, as configured, can never allow the drain to finish.
    pub fn never_allowing_pdbs(&self) -> Vec<&PdbInfo> {
        self.pdbs.iter().filter(|p| p.never_allows.is_some()).collect()
    }

    /// The pods this drain evicts whose replacements no other node of `nodes` would take
    /// ([`super::schedule`]); `coming_back`: cordoned nodes that will be uncordoned first.
    pub fn stranded(&self, nodes: &[Node], coming_back: &[String]) -> Vec<super::schedule::Stranded> {
        super::schedule::stranded(&self.evict_pods, nodes, &self.node, coming_back)
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

/// What a finished drain did.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DrainReport {
    pub node: String,
    pub evicted: Vec<PodRef>,
    pub skipped: Vec<(PodRef, SkipReason)>,
    pub warnings: Vec<(PodRef, String)>,
    /// `(namespace, name)` of the PDBs covering the evicted pods: wait for them with
    /// [`wait_pdbs_healthy`] before draining the next node.
    pub pdbs: Vec<(String, String)>,
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

#[derive(Debug, thiserror::Error)]
pub enum DrainError {
    #[error("cannot drain node {node}: there is no such node")]
    NodeNotFound { node: String },
    #[error(
        "node {node} is not cordoned: cordon it before draining, so that evicted pods are not scheduled back onto it"
    )]
    NotCordoned { node: String },
    #[error("cannot drain node {node}: {}; nothing was evicted", refusal_text(.pods))]
    Refused {
        node: String,
        pods: Vec<(PodRef, RefuseReason)>,
    },
    #[error("draining node {node} timed out after {}s: {}", .timeout.as_secs(), timeout_text(.blocked, .not_gone))]
    Timeout {
        node: String,
        timeout: Duration,
        /// Pods whose eviction was still refused.
        blocked: Vec<BlockedPod>,
        /// Pods evicted but still not gone.
        not_gone: Vec<PodRef>,
        /// Pods evicted before the time ran out.
        evicted: Vec<PodRef>,
    },
    #[error("cannot evict pod {pod}: it is covered by more than one PodDisruptionBudget{}, which the eviction API refuses ({message}); leave one PDB per pod", pdb_list(.pdbs))]
    MultiplePdbs {
        pod: PodRef,
        pdbs: Vec<String>,
        message: String,
    },
    #[error("evicting pod {pod} failed: {}{}", describe_kube_error(.source), super::error::hint_for(.source))]
    Eviction {
        pod: PodRef,
        #[source]
        source: ::kube::Error,
    },
    #[error("draining node {node} stopped: {reason}")]
    Fenced { node: String, reason: String },
    #[error("draining node {node} was interrupted: {} pod(s) evicted, {} not yet", .evicted.len(), .pending.len())]
    Cancelled {
        node: String,
        evicted: Vec<PodRef>,
        pending: Vec<PodRef>,
    },
    #[error(transparent)]
    Kube(#[from] KubeError),
}

fn refusal_text(pods: &[(PodRef, RefuseReason)]) -> String {
    let mut parts: Vec<String> = pods
        .iter()
        .map(|(p, r)| format!("pod {p} {r} ({})", r.flag()))
        .collect();
    let mut flags: Vec<&str> = pods.iter().map(|(_, r)| r.flag()).collect();
    flags.sort();
    flags.dedup();
    parts.push(format!("rerun with {} to evict them anyway", flags.join(" and ")));
    parts.join("; ")
}

fn pdb_list(pdbs: &[String]) -> String {
    if pdbs.is_empty() {
        String::new()
    } else {
        format!(" ({})", pdbs.join(", "))
    }
}

fn timeout_text(blocked: &[BlockedPod], not_gone: &[PodRef]) -> String {
    let mut parts = Vec::new();
    let mut never: Vec<&str> = blocked
        .iter()
        .flat_map(|b| b.never_allows.iter().map(String::as_str))
        .collect();
    never.sort();
    never.dedup();
    for b in blocked {
        if !b.never_allows.is_empty() {
            parts.push(format!(
                "pod {} could not be evicted: PodDisruptionBudget {} can never allow an eviction",
                b.pod,
                b.never_allows.join(", ")
            ));
        } else if b.pdbs.is_empty() {
            parts.push(format!("pod {} could not be evicted ({})", b.pod, b.message));
        } else {
            parts.push(format!(
                "pod {} could not be evicted: PodDisruptionBudget {} allows no disruption",
                b.pod,
                b.pdbs.join(", ")
            ));
        }
    }
    for p in not_gone {
        parts.push(format!("pod {p} was evicted but is still terminating"));
    }
    let hint = if !never.is_empty() {
        "waiting longer cannot help: change the budget (a maxUnavailable of at least 1, or a minAvailable below the workload's replicas) or scale the workload up, then resume (aks-patch apply ... --resume)"
    } else if blocked.is_empty() {
        "check why the pods do not terminate (finalizers, long grace periods) or raise --drain-timeout"
    } else {
        "make the budget allow a disruption (more replicas, or pods Ready elsewhere), or raise --drain-timeout"
    };
    format!("{}; {hint}", parts.join("; "))
}

// ---------------------------------------------------------------------------------------
// Drain

enum PodOutcome {
    Evicted(PodRef),
    Gone,
    /// Refused until the deadline.
    Blocked {
        pod: PodRef,
        message: String,
        pdb: Option<String>,
    },
    /// Evicted (or already terminating) but still there at the deadline.
    NotGone(PodRef),
    /// Stopped by cancellation; `evicted` tells whether its eviction had been accepted.
    Stopped {
        pod: PodRef,
        evicted: bool,
    },
    Fatal(Box<DrainError>),
}

/// Drain a cordoned node: evict its pods as kubectl does, then wait for them to be gone.
///
/// The node must be cordoned first ([`cordon`]). On `DrainError::Refused` nothing was
/// evicted; on `Timeout`, `Cancelled` and the other errors some pods may have been: the
/// caller decides whether to uncordon. `cancel` stops the drain promptly (`Cancelled`).
pub async fn drain(
    client: &Client,
    node: &str,
    opts: &DrainOptions,
    progress: impl Fn(DrainEvent) + Send + Sync,
    cancel: &CancellationToken,
) -> Result<DrainReport, DrainError> {
    drain_fenced(client, node, opts, progress, cancel, &|| async { Ok(()) }).await
}

/// [`drain`], with `fence` checked before every eviction attempt: `Err(reason)` stops the
/// drain at once ([`DrainError::Fenced`]). aks-patch proves with it that its lock is still
/// its own.
pub async fn drain_fenced<F, Fut>(
    client: &Client,
    node: &str,
    opts: &DrainOptions,
    progress: impl Fn(DrainEvent) + Send + Sync,
    cancel: &CancellationToken,
    fence: &F,
) -> Result<DrainReport, DrainError>
where
    F: Fn() -> Fut + Sync,
    Fut: std::future::Future<Output = Result<(), String>> + Send,
{
    let start = Instant::now();
    let deadline = tokio::time::Instant::now() + opts.timeout;
    let cancelled = || DrainError::Cancelled {
        node: node.to_string(),
        evicted: vec![],
        pending: vec![],
    };
    let n = tokio::select! {
        r = super::nodes::get_node(client, node) => r?,
        _ = cancel.cancelled() => return Err(cancelled()),
    };
    let Some(n) = n else {
        return Err(DrainError::NodeNotFound { node: node.to_string() });
    };
    if !n.spec.as_ref().and_then(|s| s.unschedulable).unwrap_or(false) {
        return Err(DrainError::NotCordoned { node: node.to_string() });
    }
    let plan = tokio::select! {
        r = plan_drain(client, node, opts) => r?,
        _ = cancel.cancelled() => return Err(cancelled()),
    };
    if !plan.refused.is_empty() {
        return Err(DrainError::Refused {
            node: node.to_string(),
            pods: plan.refused,
        });
    }
    progress(DrainEvent::Planned {
        evict: plan.evict.len(),
        skipped: plan.skipped.len(),
    });

    // A fatal error in one pod stops the others.
    let stop = cancel.child_token();
    let ctx = EvictCtx {
        client,
        opts,
        deadline,
        progress: &progress,
        stop: &stop,
        all_pdbs: &plan.all_pdbs,
        fence,
    };
    let evictions = plan.evict_pods.iter().map(|pod| evict_and_wait(&ctx, pod, true));
    let waits = plan.wait_pods.iter().map(|pod| evict_and_wait(&ctx, pod, false));
    let outcomes = join_all(evictions.chain(waits)).await;

    let mut evicted = vec![];
    let mut blocked = vec![];
    let mut not_gone = vec![];
    let mut pending = vec![];
    let mut fatal = None;
    for o in outcomes {
        match o {
            PodOutcome::Evicted(p) => evicted.push(p),
            PodOutcome::Gone => {}
            PodOutcome::Blocked { pod, message, pdb } => blocked.push((pod, message, pdb)),
            PodOutcome::NotGone(p) => not_gone.push(p),
            PodOutcome::Stopped { pod, evicted: true } => evicted.push(pod),
            PodOutcome::Stopped { pod, evicted: false } => pending.push(pod),
            PodOutcome::Fatal(e) => {
                if fatal.is_none() {
                    fatal = Some(e);
                }
            }
        }
    }
    if let Some(e) = fatal {
        return Err(*e);
    }
    if cancel.is_cancelled() && (!pending.is_empty() || !blocked.is_empty() || !not_gone.is_empty()) {
        pending.extend(blocked.into_iter().map(|b| b.0));
        pending.extend(not_gone);
        return Err(DrainError::Cancelled {
            node: node.to_string(),
            evicted,
            pending,
        });
    }
    if !blocked.is_empty() || !not_gone.is_empty() {
        // Name the budgets: from the refusal if it said, else by matching selectors
        // against a fresh list (the plan's as a fallback).
        let fresh = list_pdbs(client).await.unwrap_or(plan.all_pdbs.clone());
        let blocked = blocked
            .into_iter()
            .map(|(pod, message, from_msg)| {
                let mut pdbs: Vec<String> = plan
                    .evict_pods
                    .iter()
                    .find(|p| PodRef::of(p) == pod)
                    .map(|p| pdbs_covering(&fresh, p).into_iter().map(pdb_name).collect())
                    .unwrap_or_default();
                if let Some(name) = from_msg {
                    let full = format!("{}/{}", pod.namespace, name);
                    if !pdbs.contains(&full) {
                        pdbs.push(full);
                    }
                }
                let never_allows = fresh
                    .iter()
                    .filter(|p| pdbs.contains(&pdb_name(p)))
                    .filter_map(|p| never_allows(p).map(|why| format!("{} ({why})", pdb_name(p))))
                    .collect();
                BlockedPod {
                    pod,
                    pdbs,
                    message,
                    never_allows,
                }
            })
            .collect();
        return Err(DrainError::Timeout {
            node: node.to_string(),
            timeout: opts.timeout,
            blocked,
            not_gone,
            evicted,
        });
    }
    let mut workloads: Vec<WorkloadRef> = plan
        .evict_pods
        .iter()
        .filter(|p| evicted.contains(&PodRef::of(p)))
        .filter_map(|p| {
            controller_of(p).map(|c| WorkloadRef {
                kind: c.kind.clone(),
                namespace: p.metadata.namespace.clone().unwrap_or_default(),
                name: c.name.clone(),
            })
        })
        .collect();
    workloads.sort();
    workloads.dedup();
    Ok(DrainReport {
        node: node.to_string(),
        evicted,
        workloads,
        skipped: plan.skipped,
        warnings: plan.warnings,
        pdbs: plan
            .pdbs
            .iter()
            .map(|p| (p.namespace.clone(), p.name.clone()))
            .collect(),
        elapsed: start.elapsed(),
    })
}

/// The PDB a 429 names: "The disruption budget NAME needs N healthy pods ...".
pub(crate) fn pdb_from_refusal(status: &::kube::core::Status) -> Option<String> {
    let texts = status
        .details
        .iter()
        .flat_map(|d| d.causes.iter().map(|c| c.message.as_str()))
        .chain(std::iter::once(status.message.as_str()));
    for t in texts {
        if let Some(rest) = t.split("disruption budget ").nth(1) {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '.')
                .collect();
            if !name.is_empty() {
                return Some(name);
            }
        }
    }
    None
}

fn refusal_message(status: &::kube::core::Status) -> String {
    let causes: Vec<&str> = status
        .details
        .iter()
        .flat_map(|d| d.causes.iter().map(|c| c.message.as_str()))
        .filter(|m| !m.is_empty())
        .collect();
    if causes.is_empty() {
        status.message.clone()
    } else {
        format!("{} ({})", status.message, causes.join("; "))
    }
}

/// Sleep until `d` has passed or `deadline` (whichever first), unless stopped. Returns false
/// when stopped.
async fn nap(d: Duration, deadline: tokio::time::Instant, stop: &CancellationToken) -> bool {
    let until = (tokio::time::Instant::now() + d).min(deadline);
    tokio::select! {
        _ = tokio::time::sleep_until(until) => true,
        _ = stop.cancelled() => false,
    }
}

/// Wait until PDB `name` allows a disruption, at most `max` or until `deadline`, unless
/// stopped: woken by a watch on the PDB as soon as its status changes (every 200 ms when the
/// watch is not possible). Returns false when stopped.
async fn until_pdb_allows(
    api: &Api<PodDisruptionBudget>,
    name: &str,
    max: Duration,
    deadline: tokio::time::Instant,
    stop: &CancellationToken,
) -> bool {
    let until = (tokio::time::Instant::now() + max).min(deadline);
    loop {
        let rv = match api.get_opt(name).await {
            Ok(Some(p)) => {
                if p.status.as_ref().and_then(|s| s.disruptions_allowed).unwrap_or(0) > 0 {
                    return true;
                }
                p.metadata.resource_version
            }
            _ => None,
        };
        if tokio::time::Instant::now() >= until {
            return true;
        }
        tokio::select! {
            _ = crate::kube::watch::next_change(api, name, rv.as_deref(), until, Duration::from_millis(200)) => {}
            _ = stop.cancelled() => return false,
        }
    }
}

/// What every pod's eviction shares.
struct EvictCtx<'a, P, F> {
    client: &'a Client,
    opts: &'a DrainOptions,
    deadline: tokio::time::Instant,
    progress: &'a P,
    /// Cancelled by the caller, or by a fatal error in another pod.
    stop: &'a CancellationToken,
    all_pdbs: &'a [PodDisruptionBudget],
    fence: &'a F,
}

/// Evict one pod (or, with `do_evict` false, only wait for a terminating one) and wait for
/// it to be gone.
async fn evict_and_wait<P: Fn(DrainEvent) + Send + Sync, F, Fut>(
    ctx: &EvictCtx<'_, P, F>,
    pod: &Pod,
    do_evict: bool,
) -> PodOutcome
where
    F: Fn() -> Fut + Sync,
    Fut: std::future::Future<Output = Result<(), String>> + Send,
{
    let EvictCtx {
        client,
        opts,
        deadline,
        progress,
        stop,
        all_pdbs,
        fence,
    } = *ctx;
    let r = PodRef::of(pod);
    let api: Api<Pod> = Api::namespaced(client.clone(), &r.namespace);
    let mut evicted = !do_evict;
    if do_evict {
        let eviction = Eviction {
            metadata: ObjectMeta {
                name: Some(r.name.clone()),
                namespace: Some(r.namespace.clone()),
                ..Default::default()
            },
            delete_options: opts.grace_period.map(|g| DeleteOptions {
                grace_period_seconds: Some(g),
                ..Default::default()
            }),
        };
        let pp = PostParams::default();
        let what = format!("evicting pod {r}");
        let mut backoff = Backoff::new(RetryPolicy::default());
        let mut last_refusal: Option<(String, Option<String>)> = None;
        progress(DrainEvent::Evicting { pod: r.clone() });
        loop {
            if stop.is_cancelled() {
                return PodOutcome::Stopped { pod: r, evicted: false };
            }
            if tokio::time::Instant::now() >= deadline {
                let (message, pdb) = last_refusal.unwrap_or_else(|| ("the drain timeout ran out".into(), None));
                return PodOutcome::Blocked { pod: r, message, pdb };
            }
            if let Err(reason) = fence().await {
                stop.cancel();
                return PodOutcome::Fatal(Box::new(DrainError::Fenced {
                    node: pod.spec.as_ref().and_then(|s| s.node_name.clone()).unwrap_or_default(),
                    reason,
                }));
            }
            let res = tokio::select! {
                r = api.create_subresource::<Eviction, serde_json::Value>("eviction", &r.name, &pp, &eviction) => r,
                _ = stop.cancelled() => return PodOutcome::Stopped { pod: r, evicted: false },
            };
            match res {
                Ok(_) => {
                    progress(DrainEvent::Evicted { pod: r.clone() });
                    evicted = true;
                    break;
                }
                Err(::kube::Error::Api(s)) if s.code == 404 => {
                    progress(DrainEvent::AlreadyGone { pod: r.clone() });
                    return PodOutcome::Gone;
                }
                Err(::kube::Error::Api(s)) if s.code == 429 => {
                    let pdb = pdb_from_refusal(&s);
                    let message = refusal_message(&s);
                    progress(DrainEvent::EvictionRefused {
                        pod: r.clone(),
                        pdb: pdb.clone(),
                        message: message.clone(),
                        retry_in: opts.retry_interval,
                    });
                    backoff.reset();
                    // Retry as soon as the budget allows a disruption again (a replacement
                    // turned Ready elsewhere), at the latest after the retry interval.
                    let woke = match &pdb {
                        Some(name) => {
                            let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), &r.namespace);
                            until_pdb_allows(&pdbs, name, opts.retry_interval, deadline, stop).await
                        }
                        None => nap(opts.retry_interval, deadline, stop).await,
                    };
                    last_refusal = Some((message, pdb));
                    if !woke {
                        return PodOutcome::Stopped { pod: r, evicted: false };
                    }
                }
                Err(::kube::Error::Api(s))
                    if s.code == 500 && s.message.contains("more than one PodDisruptionBudget") =>
                {
                    let pdbs = pdbs_covering(all_pdbs, pod).into_iter().map(pdb_name).collect();
                    stop.cancel();
                    return PodOutcome::Fatal(Box::new(DrainError::MultiplePdbs {
                        pod: r,
                        pdbs,
                        message: s.message.clone(),
                    }));
                }
                Err(e) if super::error::is_credential_error(&e) => {
                    stop.cancel();
                    return PodOutcome::Fatal(Box::new(DrainError::Kube(KubeError::api(
                        format!("evicting pod {r}"),
                        e,
                    ))));
                }
                // Transient (5xx, a reset connection, a timeout): retried with the policy of
                // every other call. A 429 never gets here: it is the budget's answer above.
                Err(e) => match backoff.after_kube(&what, &e) {
                    Some(delay) => {
                        progress(DrainEvent::Retrying {
                            pod: r.clone(),
                            error: describe_kube_error(&e),
                        });
                        if !nap(delay, deadline, stop).await {
                            return PodOutcome::Stopped { pod: r, evicted: false };
                        }
                    }
                    None => {
                        stop.cancel();
                        return PodOutcome::Fatal(Box::new(DrainError::Eviction { pod: r, source: e }));
                    }
                },
            }
        }
    }
    // Wait for the pod to be gone, or replaced by a new one (another UID).
    let what = format!("checking whether pod {r} is gone");
    loop {
        let res = tokio::select! {
            r = with_retry(&what, || api.get_opt(&r.name)) => r,
            _ = stop.cancelled() => return PodOutcome::Stopped { pod: r, evicted },
        };
        match res {
            Ok(None) => {
                progress(DrainEvent::PodGone { pod: r.clone() });
                return if do_evict {
                    PodOutcome::Evicted(r)
                } else {
                    PodOutcome::Gone
                };
            }
            Ok(Some(p)) if p.metadata.uid.as_deref().unwrap_or("") != r.uid => {
                progress(DrainEvent::PodGone { pod: r.clone() });
                return if do_evict {
                    PodOutcome::Evicted(r)
                } else {
                    PodOutcome::Gone
                };
            }
            Ok(Some(_)) => {}
            Err(e) => {
                stop.cancel();
                return PodOutcome::Fatal(Box::new(DrainError::Kube(KubeError::api(what, e))));
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return PodOutcome::NotGone(r);
        }
        if !nap(opts.poll_interval, deadline, stop).await {
            return PodOutcome::Stopped { pod: r, evicted };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{EmptyDirVolumeSource, PodSpec, PodStatus, Volume};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelectorRequirement, OwnerReference, Time};

    #[test]
    fn putting_back_by_hand_uncordons_and_removes_the_mark() {
        assert_eq!(
            put_back_by_hand(&["a", "b"]),
            "kubectl uncordon a b && kubectl annotate node a b aks-patch.io/in-progress-"
        );
    }

    fn pod(name: &str) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some("ns".into()),
                uid: Some(format!("uid-{name}")),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: Some("n1".into()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn owned(mut p: Pod, kind: &str, name: &str) -> Pod {
        p.metadata.owner_references = Some(vec![OwnerReference {
            api_version: "apps/v1".into(),
            kind: kind.into(),
            name: name.into(),
            uid: "x".into(),
            controller: Some(true),
            block_owner_deletion: Some(true),
        }]);
        p
    }

    fn with_empty_dir(mut p: Pod) -> Pod {
        p.spec.as_mut().unwrap().volumes = Some(vec![Volume {
            name: "scratch".into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Default::default()
        }]);
        p
    }

    fn phase(mut p: Pod, ph: &str) -> Pod {
        p.status = Some(PodStatus {
            phase: Some(ph.into()),
            ..Default::default()
        });
        p
    }

    fn opts(empty_dir: bool, force: bool) -> DrainOptions {
        DrainOptions {
            delete_emptydir_data: empty_dir,
            force,
            ..Default::default()
        }
    }

    fn d(p: &Pod, o: &DrainOptions, ds_exists: bool) -> PodDecision {
        decide(p, o, Utc::now(), |_| ds_exists)
    }

    /// kubectl pkg/drain `TestDeletePods`/`TestDrain` filter cases, reduced to decisions.
    #[test]
    fn replicated_pods_are_evicted() {
        let p = owned(pod("rs"), "ReplicaSet", "rs-1");
        assert_eq!(d(&p, &opts(false, false), true), PodDecision::Evict { warning: None });
    }

    #[test]
    fn aks_patch_node_shell_pods_are_left_to_aks_patch() {
        // A bare pod: refused without --force, unless it is aks-patch's own node-shell pod.
        let mut p = pod("aks-patch-shell-x1y2z");
        assert!(matches!(d(&p, &opts(false, false), true), PodDecision::Refuse(_)));
        p.metadata.labels = Some(
            [
                ("app.kubernetes.io/managed-by".to_string(), "aks-patch".to_string()),
                ("aks-patch.io/run".to_string(), "20261202T010000Z-00ff".to_string()),
            ]
            .into(),
        );
        assert_eq!(
            d(&p, &opts(false, false), true),
            PodDecision::Skip(SkipReason::NodeShell)
        );
        // The managed-by label alone (another aks-patch pod) is not enough.
        p.metadata.labels.as_mut().unwrap().remove("aks-patch.io/run");
        assert!(matches!(d(&p, &opts(false, false), true), PodDecision::Refuse(_)));
    }

    #[test]
    fn daemonset_pods_are_skipped_and_orphans_need_force() {
        let p = owned(pod("ds"), "DaemonSet", "kube-proxy");
        assert_eq!(
            d(&p, &opts(false, false), true),
            PodDecision::Skip(SkipReason::DaemonSet {
                daemonset: "ns/kube-proxy".into()
            })
        );
        assert_eq!(
            d(&p, &opts(false, false), false),
            PodDecision::Refuse(RefuseReason::DaemonSetMissing {
                daemonset: "ns/kube-proxy".into()
            })
        );
        assert!(matches!(
            d(&p, &opts(false, true), false),
            PodDecision::Evict { warning: Some(_) }
        ));
        // A finished DaemonSet pod is evicted without asking about its DaemonSet.
        let done = phase(p, "Succeeded");
        assert_eq!(
            decide(&done, &opts(false, false), Utc::now(), |_| panic!("asked")),
            PodDecision::Evict { warning: None }
        );
    }

    #[test]
    fn mirror_pods_are_skipped_even_when_finished_or_bare() {
        let mut p = pod("kube-apiserver-n1");
        p.metadata.annotations = Some([(MIRROR_POD_ANNOTATION.to_string(), "abc".to_string())].into());
        assert_eq!(
            d(&p, &opts(false, false), true),
            PodDecision::Skip(SkipReason::MirrorPod)
        );
        let p = phase(p, "Failed");
        assert_eq!(
            d(&p, &opts(false, false), true),
            PodDecision::Skip(SkipReason::MirrorPod)
        );
    }

    #[test]
    fn empty_dir_needs_consent_unless_finished() {
        let p = with_empty_dir(owned(pod("cache"), "ReplicaSet", "cache-1"));
        assert_eq!(
            d(&p, &opts(false, false), true),
            PodDecision::Refuse(RefuseReason::EmptyDir)
        );
        assert!(matches!(
            d(&p, &opts(true, false), true),
            PodDecision::Evict { warning: Some(_) }
        ));
        let done = phase(p, "Succeeded");
        assert_eq!(
            d(&done, &opts(false, false), true),
            PodDecision::Evict { warning: None }
        );
    }

    #[test]
    fn bare_pods_need_force_unless_finished() {
        let p = pod("debug");
        assert_eq!(
            d(&p, &opts(false, false), true),
            PodDecision::Refuse(RefuseReason::NoController)
        );
        assert!(matches!(
            d(&p, &opts(false, true), true),
            PodDecision::Evict { warning: Some(_) }
        ));
        let done = phase(p, "Failed");
        assert_eq!(
            d(&done, &opts(false, false), true),
            PodDecision::Evict { warning: None }
        );
    }

    #[test]
    fn filters_run_in_kubectl_order() {
        // A bare pod with emptyDir: the emptyDir filter speaks first.
        let p = with_empty_dir(pod("both"));
        assert_eq!(
            d(&p, &opts(false, false), true),
            PodDecision::Refuse(RefuseReason::EmptyDir)
        );
        assert_eq!(
            d(&p, &opts(true, false), true),
            PodDecision::Refuse(RefuseReason::NoController)
        );
        assert!(matches!(d(&p, &opts(true, true), true), PodDecision::Evict { .. }));
        // An owner reference that is not the controller does not count.
        let mut p = pod("not-controlled");
        p.metadata.owner_references = Some(vec![OwnerReference {
            kind: "ReplicaSet".into(),
            name: "x".into(),
            controller: Some(false),
            ..Default::default()
        }]);
        assert_eq!(
            d(&p, &opts(false, false), true),
            PodDecision::Refuse(RefuseReason::NoController)
        );
    }

    #[test]
    fn terminating_pods_are_waited_for_not_evicted() {
        let mut p = pod("going");
        let since = Utc::now() - chrono::TimeDelta::seconds(90);
        p.metadata.deletion_timestamp = Some(Time(super::super::time::to_jiff(since)));
        assert!(matches!(
            d(&p, &opts(false, false), true),
            PodDecision::Skip(SkipReason::Terminating { waited_for: true, .. })
        ));
        let o = DrainOptions {
            skip_wait_for_delete_timeout: Some(Duration::from_secs(60)),
            ..Default::default()
        };
        assert!(matches!(
            d(&p, &o, true),
            PodDecision::Skip(SkipReason::Terminating { waited_for: false, .. })
        ));
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn label_selectors() {
        let l = labels(&[("app", "storefront"), ("tier", "web")]);
        assert!(!selector_matches(None, &l), "a null selector selects nothing");
        assert!(
            selector_matches(Some(&LabelSelector::default()), &l),
            "empty selects all"
        );
        let ml = |pairs: &[(&str, &str)]| LabelSelector {
            match_labels: Some(labels(pairs)),
            match_expressions: None,
        };
        assert!(selector_matches(Some(&ml(&[("app", "storefront")])), &l));
        assert!(!selector_matches(Some(&ml(&[("app", "checkout")])), &l));
        let expr = |key: &str, op: &str, values: &[&str]| LabelSelector {
            match_labels: None,
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: key.into(),
                operator: op.into(),
                values: Some(values.iter().map(|s| s.to_string()).collect()),
            }]),
        };
        assert!(selector_matches(Some(&expr("tier", "In", &["web", "api"])), &l));
        assert!(!selector_matches(Some(&expr("tier", "In", &["db"])), &l));
        assert!(selector_matches(Some(&expr("tier", "NotIn", &["db"])), &l));
        assert!(selector_matches(Some(&expr("zone", "NotIn", &["a"])), &l));
        assert!(selector_matches(Some(&expr("app", "Exists", &[])), &l));
        assert!(!selector_matches(Some(&expr("app", "DoesNotExist", &[])), &l));
        assert!(!selector_matches(Some(&expr("app", "Bogus", &[])), &l));
        let no_values = LabelSelector {
            match_labels: None,
            match_expressions: Some(vec![LabelSelectorRequirement {
                key: "tier".into(),
                operator: "In".into(),
                values: None,
            }]),
        };
        assert!(!selector_matches(Some(&no_values), &l), "invalid: selects nothing");
        let both = LabelSelector {
            match_labels: Some(labels(&[("app", "storefront")])),
            ..expr("tier", "NotIn", &["web"])
        };
        assert!(
            !selector_matches(Some(&both), &l),
            "labels and expressions must all match"
        );
    }

    #[test]
    fn pdb_named_in_a_refusal() {
        let s: ::kube::core::Status = serde_json::from_value(serde_json::json!({
            "kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 429, "reason": "TooManyRequests",
            "message": "Cannot evict pod as it would violate the pod's disruption budget.",
            "details": {"causes": [{"reason": "DisruptionBudget", "message": "The disruption budget storefront-pdb needs 2 healthy pods and has 2 currently"}]}
        }))
        .unwrap();
        assert_eq!(pdb_from_refusal(&s).as_deref(), Some("storefront-pdb"));
        assert!(refusal_message(&s).contains("needs 2 healthy pods"));
        let plain = ::kube::core::Status::failure("Too many requests", "TooManyRequests").with_code(429);
        assert_eq!(pdb_from_refusal(&plain), None);
    }

    #[test]
    fn messages_name_pods_flags_and_pdbs() {
        let p = PodRef {
            namespace: "shop".into(),
            name: "session-cache-1".into(),
            uid: "u".into(),
        };
        let q = PodRef {
            namespace: "default".into(),
            name: "debug-shell".into(),
            uid: "v".into(),
        };
        let e = DrainError::Refused {
            node: "n1".into(),
            pods: vec![
                (p.clone(), RefuseReason::EmptyDir),
                (q.clone(), RefuseReason::NoController),
            ],
        }
        .to_string();
        assert!(
            e.contains("shop/session-cache-1") && e.contains("default/debug-shell"),
            "{e}"
        );
        assert!(e.contains("--delete-emptydir-data and --force"), "{e}");
        let e = DrainError::Timeout {
            node: "n1".into(),
            timeout: Duration::from_secs(30),
            blocked: vec![BlockedPod {
                pod: p.clone(),
                pdbs: vec!["shop/storefront-pdb".into()],
                message: "x".into(),
                never_allows: vec![],
            }],
            not_gone: vec![q],
            evicted: vec![],
        }
        .to_string();
        assert!(e.contains("30s") && e.contains("shop/storefront-pdb") && e.contains("shop/session-cache-1"));
        assert!(
            e.contains("default/debug-shell was evicted but is still terminating"),
            "{e}"
        );
        assert!(e.contains("raise --drain-timeout"), "{e}");
        // A budget that can never allow: named, with the fix; a longer timeout is no fix.
        let e = DrainError::Timeout {
            node: "n1".into(),
            timeout: Duration::from_secs(30),
            blocked: vec![BlockedPod {
                pod: p.clone(),
                pdbs: vec!["shop/storefront-pdb".into()],
                message: "x".into(),
                never_allows: vec!["shop/storefront-pdb (maxUnavailable is 0)".into()],
            }],
            not_gone: vec![],
            evicted: vec![],
        }
        .to_string();
        assert!(
            e.contains("PodDisruptionBudget shop/storefront-pdb (maxUnavailable is 0) can never allow an eviction"),
            "{e}"
        );
        assert!(
            e.contains("change the budget") && e.contains("scale the workload up"),
            "{e}"
        );
        assert!(!e.contains("--drain-timeout"), "{e}");
    }

    #[test]
    fn pdbs_that_can_never_allow_a_disruption() {
        use k8s_openapi::api::policy::v1::{PodDisruptionBudgetSpec, PodDisruptionBudgetStatus};
        use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
        let pdb = |max: Option<IntOrString>, min: Option<IntOrString>, expected: i32| PodDisruptionBudget {
            spec: Some(PodDisruptionBudgetSpec {
                max_unavailable: max,
                min_available: min,
                ..Default::default()
            }),
            status: Some(PodDisruptionBudgetStatus {
                expected_pods: Some(expected),
                ..Default::default()
            }),
            ..Default::default()
        };
        assert_eq!(
            never_allows(&pdb(Some(IntOrString::Int(0)), None, 3)).as_deref(),
            Some("maxUnavailable is 0")
        );
        assert!(never_allows(&pdb(Some(IntOrString::String("0%".into())), None, 3)).is_some());
        assert!(never_allows(&pdb(None, Some(IntOrString::String("100%".into())), 3)).is_some());
        assert!(never_allows(&pdb(None, Some(IntOrString::Int(3)), 3)).is_some());
        assert!(never_allows(&pdb(None, Some(IntOrString::Int(2)), 3)).is_none());
        assert!(never_allows(&pdb(Some(IntOrString::Int(1)), None, 3)).is_none());
        assert!(never_allows(&pdb(None, Some(IntOrString::String("50%".into())), 3)).is_none());
    }

    #[test]
    fn pdb_health() {
        let mut i = PdbInfo {
            namespace: "a".into(),
            name: "b".into(),
            disruptions_allowed: 0,
            current_healthy: 2,
            desired_healthy: 2,
            expected_pods: 3,
            pods: vec![],
            never_allows: None,
        };
        assert!(!i.healthy());
        i.current_healthy = 3;
        assert!(i.healthy(), "every expected pod healthy");
        i.current_healthy = 2;
        i.disruptions_allowed = 1;
        assert!(i.healthy());
    }
}
