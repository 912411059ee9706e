//! Why a drain failed, in kubectl's words with what to do about it.

use super::super::error::{describe_kube_error, hint_for, KubeError};
use super::types::{BlockedPod, PodRef, RefuseReason};
use std::time::Duration;

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
    #[error("evicting pod {pod} failed: {}{}", describe_kube_error(.source), hint_for(.source))]
    Eviction {
        pod: PodRef,
        #[source]
        source: ::kube::Error,
    },
    /// The fence failed (the lock is not provably ours): its error is the source.
    #[error("draining node {node} stopped: {source}")]
    Fenced {
        node: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
