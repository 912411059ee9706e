//! The engine's ports for real: the Kubernetes API through kube-rs ([`KubeCluster`]) and the
//! Lease lock ([`LockGuard`] as the [`Fence`]). The nodes' transport (SSH or node-shell pods)
//! is [`super::shell::ShellTransport`].

use super::gate;
use super::ports::{Cluster, DrainStop, FailureKind, Fence, FenceError, PortError};
use crate::kube::drain::{self as kdrain, DrainError, DrainEvent, DrainOptions, DrainReport, WorkloadRef};
use crate::kube::reboot::{RebootError, RebootEvent};
use crate::kube::{self as k, KubeError, LockGuard, NodeInfo, ObjectRef};
use async_trait::async_trait;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Eviction attempts trust a lock renewal at most this old (cordon and reboot renew anew).
pub const EVICTION_FENCE_AGE: Duration = Duration::from_secs(2);

/// What kind of failure a Kubernetes API call's is.
fn kube_kind(e: &KubeError) -> FailureKind {
    match (e, e.status_code()) {
        (KubeError::Auth { .. } | KubeError::Bearer { .. }, _) | (_, Some(401 | 403)) => FailureKind::Auth,
        (_, Some(404)) => FailureKind::NotFound,
        (_, Some(409)) => FailureKind::Conflict,
        (_, Some(408 | 504)) => FailureKind::Timeout,
        (KubeError::Api { source, .. }, _) if k::is_transient(source) => FailureKind::Unreachable,
        _ => FailureKind::Failed,
    }
}

fn kube_err(e: KubeError) -> PortError {
    PortError::caused_by(kube_kind(&e), e)
}

fn drain_err(e: DrainError) -> DrainStop {
    match e {
        DrainError::Cancelled { .. } => DrainStop::Cancelled,
        DrainError::Fenced { source, .. } => DrainStop::Fenced(match source.downcast::<FenceError>() {
            Ok(fenced) => *fenced,
            // Our fence fails with a FenceError only; anything else still means unconfirmed.
            Err(other) => FenceError::from(k::LockError::Unconfirmed {
                lease: String::new(),
                reason: other.to_string(),
            }),
        }),
        DrainError::Kube(k) => DrainStop::Failed(kube_err(k)),
        DrainError::Eviction { ref source, .. } => {
            let auth = matches!(source, ::kube::Error::Api(s) if s.code == 401 || s.code == 403)
                || k::error::is_credential_error(source);
            let kind = if auth { FailureKind::Auth } else { FailureKind::Failed };
            DrainStop::Failed(PortError::caused_by(kind, e))
        }
        DrainError::Timeout { .. } => DrainStop::Failed(PortError::caused_by(FailureKind::Timeout, e)),
        DrainError::NodeNotFound { .. } => DrainStop::Failed(PortError::caused_by(FailureKind::NotFound, e)),
        other => DrainStop::Failed(PortError::caused_by(FailureKind::Failed, other)),
    }
}

/// The cluster through the Kubernetes API.
pub struct KubeCluster {
    pub client: ::kube::Client,
}

#[async_trait]
impl Cluster for KubeCluster {
    async fn node(&self, name: &str) -> Result<Option<NodeInfo>, PortError> {
        k::get_node_info(&self.client, name).await.map_err(kube_err)
    }

    async fn blockers(&self, exempt: &[String], workloads: &[WorkloadRef]) -> Result<Vec<gate::Blocker>, PortError> {
        gate::check(&self.client, exempt, workloads).await.map_err(kube_err)
    }

    async fn blockers_changed(&self, blockers: &[gate::Blocker], max: Duration) {
        watch_blockers(&self.client, blockers, max).await
    }

    async fn stranded_pods(&self, node: &str, opts: &DrainOptions) -> Result<Vec<k::schedule::Stranded>, PortError> {
        let plan = k::plan_drain(&self.client, node, opts).await.map_err(kube_err)?;
        let cluster = k::snapshot::read(&self.client).await.map_err(kube_err)?;
        Ok(plan.stranded(&cluster, &[]))
    }

    async fn snapshot(&self) -> Result<k::snapshot::ClusterSnapshot, PortError> {
        k::snapshot::read(&self.client).await.map_err(kube_err)
    }

    async fn cordon(&self, node: &str, run_id: &str) -> Result<(), PortError> {
        kdrain::cordon_marked(&self.client, node, run_id)
            .await
            .map(|_| ())
            .map_err(kube_err)
    }

    async fn release(&self, node: &str, uncordon: bool) -> Result<(), PortError> {
        kdrain::release_node(&self.client, node, uncordon)
            .await
            .map_err(kube_err)
    }

    async fn drain(
        &self,
        node: &str,
        opts: &DrainOptions,
        progress: &(dyn Fn(DrainEvent) + Send + Sync),
        cancel: &CancellationToken,
        fence: &dyn Fence,
    ) -> Result<DrainReport, DrainStop> {
        let check = || fence.fence(EVICTION_FENCE_AGE);
        kdrain::drain_fenced(&self.client, node, opts, progress, cancel, &check)
            .await
            .map_err(drain_err)
    }

    async fn wait_for_reboot(
        &self,
        node: &str,
        old_boot_id: &str,
        timeout: Duration,
        progress: &(dyn Fn(RebootEvent) + Send + Sync),
    ) -> Result<NodeInfo, PortError> {
        k::wait_for_reboot(&self.client, node, old_boot_id, timeout, progress)
            .await
            .map_err(|e| match e {
                RebootError::Kube(k) => kube_err(k),
                timeout @ RebootError::Timeout { .. } => PortError::caused_by(FailureKind::Timeout, timeout),
            })
    }

    async fn wait_pdbs(&self, pdbs: &[ObjectRef], timeout: Duration) -> Result<(), PortError> {
        k::wait_pdbs_healthy(&self.client, pdbs, timeout)
            .await
            .map_err(|e| match e {
                k::PdbWaitError::Kube(k) => kube_err(k),
                timeout @ k::PdbWaitError::Timeout { .. } => PortError::caused_by(FailureKind::Timeout, timeout),
            })
    }

    async fn mark_pending(&self, nodes: &[String], run_id: &str) -> Result<(), PortError> {
        set_pending_all(&self.client, nodes, Some(run_id)).await
    }

    async fn clear_pending(&self, nodes: &[String]) -> Result<(), PortError> {
        set_pending_all(&self.client, nodes, None).await
    }

    async fn take_kured_lock(&self, node: &str, ttl: Duration) -> Result<bool, PortError> {
        match k::take_kured_lock(&self.client, node, ttl).await {
            Ok(k::KuredLock::NotInstalled) => Ok(false),
            Ok(k::KuredLock::Taken { .. }) => Ok(true),
            Err(k::KuredError::Kube(e)) => Err(kube_err(e)),
            Err(e @ k::KuredError::Busy { .. }) => Err(PortError::caused_by(FailureKind::Conflict, e)),
            Err(e) => Err(PortError::caused_by(FailureKind::Failed, e)),
        }
    }

    async fn release_kured_lock(&self, node: &str) -> Result<(), PortError> {
        k::release_kured_lock(&self.client, node).await.map_err(|e| match e {
            k::KuredError::Kube(e) => kube_err(e),
            other => PortError::caused_by(FailureKind::Failed, other),
        })
    }
}

#[async_trait]
impl Fence for LockGuard {
    async fn fence(&self, max_age: Duration) -> Result<(), FenceError> {
        LockGuard::fence(self, max_age).await.map_err(FenceError::from)
    }

    fn lost_reason(&self) -> Option<String> {
        LockGuard::lost_reason(self)
    }

    fn auth_failed(&self) -> bool {
        LockGuard::auth_failed(self)
    }
}

/// How many nodes' pending taints are written at once.
const PENDING_CONCURRENCY: usize = 8;

/// The pending taint valued `run_id` (`None`: removed) on each of `nodes`, a few at a time;
/// every node is tried, and the first failure is returned, saying how many failed.
async fn set_pending_all(client: &::kube::Client, nodes: &[String], run_id: Option<&str>) -> Result<(), PortError> {
    use futures::stream::{self, StreamExt};
    // Made first (no closure inside the stream), so that the port's future stays `Send`.
    let writes: Vec<_> = nodes
        .iter()
        .map(|node| k::pending::set_pending(client, node, run_id))
        .collect();
    let results: Vec<Result<bool, KubeError>> = stream::iter(writes)
        .buffer_unordered(PENDING_CONCURRENCY)
        .collect()
        .await;
    let failures: Vec<KubeError> = results.into_iter().filter_map(Result::err).collect();
    let count = failures.len();
    match failures.into_iter().next() {
        None => Ok(()),
        Some(first) if count == 1 => Err(kube_err(first)),
        Some(first) => {
            let e = kube_err(first);
            let message = format!("{} (and {} other node(s))", e.message, count - 1);
            Err(e.reworded(message))
        }
    }
}

/// Wake as soon as one of the objects behind `blockers` changes (a watch on each Node and
/// ReplicaSet/StatefulSet they name, from the version just read), at most after `max`.
async fn watch_blockers(client: &::kube::Client, blockers: &[gate::Blocker], max: Duration) {
    use futures::future::{select_all, BoxFuture, FutureExt};
    use k8s_openapi::api::apps::v1::{ReplicaSet, StatefulSet};
    use k8s_openapi::api::core::v1::Node;
    use kube::api::Api;
    let deadline = tokio::time::Instant::now() + max;
    fn wait_on<K>(api: Api<K>, name: &str, deadline: tokio::time::Instant, max: Duration) -> BoxFuture<'static, ()>
    where
        K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
    {
        let name = name.to_string();
        async move { k::watch::change_from_now(&api, &name, deadline, max).await }.boxed()
    }
    let mut waits: Vec<BoxFuture<'_, ()>> = vec![];
    for b in blockers {
        let c = client.clone();
        match b {
            gate::Blocker::NodeDown { node, .. } | gate::Blocker::NodeInProgress { node, .. } => {
                waits.push(wait_on(Api::<Node>::all(c), node, deadline, max))
            }
            gate::Blocker::WorkloadNotReady { workload: w, .. } => match w.kind.as_str() {
                "ReplicaSet" => waits.push(wait_on(
                    Api::<ReplicaSet>::namespaced(c, &w.namespace),
                    &w.name,
                    deadline,
                    max,
                )),
                "StatefulSet" => waits.push(wait_on(
                    Api::<StatefulSet>::namespaced(c, &w.namespace),
                    &w.name,
                    deadline,
                    max,
                )),
                _ => {}
            },
        }
    }
    if waits.is_empty() {
        tokio::time::sleep_until(deadline).await;
    } else {
        select_all(waits).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: u16) -> KubeError {
        KubeError::api(
            "cordoning node n0",
            ::kube::Error::Api(::kube::core::Status::failure("boom", "Boom").with_code(code).boxed()),
        )
    }

    #[test]
    fn an_api_failure_crosses_the_port_as_its_kind_with_its_cause() {
        for (code, kind) in [
            (401, FailureKind::Auth),
            (403, FailureKind::Auth),
            (404, FailureKind::NotFound),
            (409, FailureKind::Conflict),
            (504, FailureKind::Timeout),
            (503, FailureKind::Unreachable),
            (500, FailureKind::Unreachable),
            (422, FailureKind::Failed),
        ] {
            let e = kube_err(api(code));
            assert_eq!(e.kind, kind, "HTTP {code}");
            assert_eq!(e.is_auth(), kind == FailureKind::Auth);
            assert!(e.to_string().starts_with("cordoning node n0 failed"), "{e}");
            let cause = std::error::Error::source(&e).expect("the API error is the cause");
            assert!(cause.downcast_ref::<KubeError>().is_some(), "{cause:?}");
        }
    }

    #[test]
    fn a_drain_stopped_by_the_fence_gives_back_the_fences_own_error() {
        let lost = FenceError::from(k::LockError::Lost {
            lease: "kube-system/aks-patch".into(),
            reason: "another run took it".into(),
        });
        let stopped = drain_err(DrainError::Fenced {
            node: "n0".into(),
            source: Box::new(lost.clone()),
        });
        assert_eq!(stopped, DrainStop::Fenced(lost.clone()));
        let DrainStop::Fenced(e) = stopped else { unreachable!() };
        assert!(matches!(e.lock_error(), k::LockError::Lost { .. }));
        assert!(e.to_string().contains("another run took it"), "{e}");
    }

    #[test]
    fn a_drain_that_timed_out_is_a_timeout_and_a_refused_eviction_an_auth_failure() {
        let timed_out = drain_err(DrainError::Timeout {
            node: "n0".into(),
            timeout: Duration::from_secs(60),
            blocked: vec![],
            not_gone: vec![],
            evicted: vec![],
        });
        assert!(
            matches!(timed_out, DrainStop::Failed(ref e) if e.kind == FailureKind::Timeout),
            "{timed_out:?}"
        );
        let refused = drain_err(DrainError::Eviction {
            pod: k::PodRef {
                namespace: "app".into(),
                name: "web-0".into(),
                uid: "u".into(),
            },
            source: ::kube::Error::Api(::kube::core::Status::failure("no", "Forbidden").with_code(403).boxed()),
        });
        assert!(
            matches!(refused, DrainStop::Failed(ref e) if e.is_auth()),
            "{refused:?}"
        );
    }
}
