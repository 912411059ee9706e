//! The drain itself: every pod evicted at once as kubectl does, a refusal by a
//! PodDisruptionBudget retried as soon as the budget allows, a fence checked before every
//! attempt, then each evicted pod waited for until it is gone.

use super::super::error::{describe_kube_error, is_credential_error, KubeError};
use super::super::nodes::get_node;
use super::super::watch::next_change;
use super::error::DrainError;
use super::pdb::never_allows;
use super::plan::{controller_of, list_pdbs, pdb_name, pdbs_covering, plan_drain};
use super::types::{BlockedPod, DrainEvent, DrainOptions, DrainReport, EvictedPod, ObjectRef, PodRef, WorkloadRef};
use crate::retry::{with_retry, Backoff, RetryPolicy};
use ::kube::api::{Api, PostParams};
use ::kube::Client;
use futures::future::join_all;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::{Eviction, PodDisruptionBudget};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{DeleteOptions, ObjectMeta};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

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
/// The node must be cordoned first ([`cordon`](super::cordon::cordon)). On `DrainError::Refused` nothing was
/// evicted; on `Timeout`, `Cancelled` and the other errors some pods may have been: the
/// caller decides whether to uncordon. `cancel` stops the drain promptly (`Cancelled`).
pub async fn drain(
    client: &Client,
    node: &str,
    opts: &DrainOptions,
    progress: impl Fn(DrainEvent) + Send + Sync,
    cancel: &CancellationToken,
) -> Result<DrainReport, DrainError> {
    drain_fenced(client, node, opts, progress, cancel, &|| async {
        Ok::<(), std::convert::Infallible>(())
    })
    .await
}

/// [`drain`], with `fence` checked before every eviction attempt: an `Err` stops the drain at
/// once ([`DrainError::Fenced`], the fence's error its source). aks-patch proves with it that
/// its lock is still its own.
pub async fn drain_fenced<F, Fut, E>(
    client: &Client,
    node: &str,
    opts: &DrainOptions,
    progress: impl Fn(DrainEvent) + Send + Sync,
    cancel: &CancellationToken,
    fence: &F,
) -> Result<DrainReport, DrainError>
where
    F: Fn() -> Fut + Sync,
    Fut: std::future::Future<Output = Result<(), E>> + Send,
    E: std::error::Error + Send + Sync + 'static,
{
    let start = Instant::now();
    let deadline = tokio::time::Instant::now() + opts.timeout;
    let cancelled = || DrainError::Cancelled {
        node: node.to_string(),
        evicted: vec![],
        pending: vec![],
    };
    let n = tokio::select! {
        r = get_node(client, node) => r?,
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
    // Each evicted pod with its creation time, as the plan read it.
    let evicted = evicted
        .into_iter()
        .map(|r| {
            plan.evict_pods
                .iter()
                .chain(&plan.wait_pods)
                .find(|p| PodRef::of(p) == r)
                .map(EvictedPod::of)
                .unwrap_or(EvictedPod { pod: r, created: None })
        })
        .collect();
    Ok(DrainReport {
        node: node.to_string(),
        evicted,
        workloads,
        skipped: plan.skipped,
        warnings: plan.warnings,
        pdbs: plan
            .pdbs
            .iter()
            .map(|p| ObjectRef::new(&p.namespace, &p.name))
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
            _ = next_change(api, name, rv.as_deref(), until, Duration::from_millis(200)) => {}
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
async fn evict_and_wait<P: Fn(DrainEvent) + Send + Sync, F, Fut, E>(
    ctx: &EvictCtx<'_, P, F>,
    pod: &Pod,
    do_evict: bool,
) -> PodOutcome
where
    F: Fn() -> Fut + Sync,
    Fut: std::future::Future<Output = Result<(), E>> + Send,
    E: std::error::Error + Send + Sync + 'static,
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
            if let Err(e) = fence().await {
                stop.cancel();
                return PodOutcome::Fatal(Box::new(DrainError::Fenced {
                    node: pod.spec.as_ref().and_then(|s| s.node_name.clone()).unwrap_or_default(),
                    source: Box::new(e),
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
                Err(e) if is_credential_error(&e) => {
                    stop.cancel();
                    return PodOutcome::Fatal(Box::new(DrainError::Kube(KubeError::api(
                        format!("evicting pod {r}"),
                        e,
                    ))));
                }
                // Transient (5xx, a reset connection, a timeout): retried with the policy of
                // every other call. A 429 never gets here: it is the budget's answer above.
                Err(e) => match backoff.after_error(&what, &e) {
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
}
