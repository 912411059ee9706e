//! The engine's ports for real: the Kubernetes API through kube-rs ([`KubeCluster`]) and the
//! Lease lock ([`LockGuard`] as the [`Fence`]). The nodes' transport (SSH or node-shell pods)
//! is [`super::shell::ShellTransport`].

use super::gate;
use super::ports::{Cluster, DrainStop, Fence, PortError};
use crate::kube::drain::{self as kdrain, DrainError, DrainEvent, DrainOptions, DrainReport, WorkloadRef};
use crate::kube::reboot::{RebootError, RebootEvent};
use crate::kube::{self as k, KubeError, LockGuard, NodeInfo};
use async_trait::async_trait;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Eviction attempts trust a lock renewal at most this old (cordon and reboot renew anew).
pub const EVICTION_FENCE_AGE: Duration = Duration::from_secs(2);

fn kube_err(e: KubeError) -> PortError {
    PortError {
        auth: matches!(e.status_code(), Some(401 | 403))
            || matches!(e, KubeError::Auth { .. } | KubeError::Bearer { .. }),
        message: e.to_string(),
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
        let nodes = k::list_nodes(&self.client, None).await.map_err(kube_err)?;
        Ok(plan.stranded(&nodes, &[]))
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
            .map_err(|e| match e {
                DrainError::Cancelled { .. } => DrainStop::Cancelled,
                DrainError::Fenced { reason, .. } => DrainStop::Fenced(reason),
                DrainError::Kube(k) => DrainStop::Failed(kube_err(k)),
                DrainError::Eviction { ref source, .. } => {
                    let auth = matches!(source, ::kube::Error::Api(s) if s.code == 401 || s.code == 403)
                        || k::error::is_credential_error(source);
                    DrainStop::Failed(PortError {
                        message: e.to_string(),
                        auth,
                    })
                }
                other => DrainStop::Failed(PortError::new(other.to_string())),
            })
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
                other => PortError::new(other.to_string()),
            })
    }

    async fn wait_pdbs(&self, pdbs: &[(String, String)], timeout: Duration) -> Result<(), PortError> {
        k::wait_pdbs_healthy(&self.client, pdbs, timeout)
            .await
            .map_err(|e| match e {
                k::PdbWaitError::Kube(k) => kube_err(k),
                other => PortError::new(other.to_string()),
            })
    }

    async fn take_kured_lock(&self, node: &str, ttl: Duration) -> Result<bool, PortError> {
        match k::take_kured_lock(&self.client, node, ttl).await {
            Ok(k::KuredLock::NotInstalled) => Ok(false),
            Ok(k::KuredLock::Taken { .. }) => Ok(true),
            Err(k::KuredError::Kube(e)) => Err(kube_err(e)),
            Err(e) => Err(PortError::new(e.to_string())),
        }
    }

    async fn release_kured_lock(&self, node: &str) -> Result<(), PortError> {
        k::release_kured_lock(&self.client, node)
            .await
            .map_err(|e| PortError::new(e.to_string()))
    }
}

#[async_trait]
impl Fence for LockGuard {
    async fn fence(&self, max_age: Duration) -> Result<(), String> {
        LockGuard::fence(self, max_age).await.map_err(|e| e.to_string())
    }

    fn lost_reason(&self) -> Option<String> {
        LockGuard::lost_reason(self)
    }

    fn auth_failed(&self) -> bool {
        LockGuard::auth_failed(self)
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
