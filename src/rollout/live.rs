//! The engine's ports for real: the Kubernetes API through kube-rs ([`KubeCluster`]), the
//! nodes over SSH ([`SshTransport`]), and the Lease lock ([`LockGuard`] as the [`Fence`]).

use super::gate;
use super::ports::{Cluster, DrainStop, Fence, NodeTarget, PortError, Transport};
use crate::kube::drain::{self as kdrain, DrainError, DrainEvent, DrainOptions, DrainReport, WorkloadRef};
use crate::kube::reboot::{RebootError, RebootEvent};
use crate::kube::{self as k, KubeError, LockGuard, NodeRow};
use crate::ssh::{self, NodeSession, Probe, SshError, SshOptions};
use async_trait::async_trait;
use std::collections::HashMap;
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
    async fn node(&self, name: &str) -> Result<Option<NodeRow>, PortError> {
        k::get_node_row(&self.client, name).await.map_err(kube_err)
    }

    async fn blockers(&self, exempt: &[String], workloads: &[WorkloadRef]) -> Result<Vec<gate::Blocker>, PortError> {
        gate::check(&self.client, exempt, workloads).await.map_err(kube_err)
    }

    async fn blockers_changed(&self, blockers: &[gate::Blocker], max: Duration) {
        watch_blockers(&self.client, blockers, max).await
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
    ) -> Result<NodeRow, PortError> {
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
            Err(k::LockError::Kube(e)) => Err(kube_err(e)),
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

/// The nodes over SSH: one session per node, kept between calls and dropped on failure.
pub struct SshTransport {
    opts: SshOptions,
    sessions: tokio::sync::Mutex<HashMap<String, NodeSession>>,
}

impl SshTransport {
    pub fn new(opts: SshOptions) -> SshTransport {
        SshTransport {
            opts,
            sessions: tokio::sync::Mutex::new(HashMap::new()),
        }
    }

    async fn checkout(&self, node: &NodeTarget) -> Result<NodeSession, PortError> {
        if let Some(s) = self.sessions.lock().await.remove(&node.name) {
            return Ok(s);
        }
        ssh::connect(&self.opts, &node.name, &node.address)
            .await
            .map_err(|e| PortError::new(format!("cannot reach node {} over SSH: {e}", node.name)))
    }

    /// Run `script`, keeping the session for next time when it worked.
    async fn run(&self, node: &NodeTarget, script: &str, timeout: Duration) -> Result<ssh::CommandOutput, RunError> {
        let s = self.checkout(node).await.map_err(RunError::Connect)?;
        match s.run(script, timeout).await {
            Ok(o) => {
                self.sessions.lock().await.insert(node.name.clone(), s);
                Ok(o)
            }
            Err(e) => {
                let _ = s.close().await;
                Err(RunError::Ssh(e))
            }
        }
    }
}

enum RunError {
    Connect(PortError),
    Ssh(SshError),
}

impl From<RunError> for PortError {
    fn from(e: RunError) -> PortError {
        match e {
            RunError::Connect(p) => p,
            RunError::Ssh(e) => PortError::new(e.to_string()),
        }
    }
}

#[async_trait]
impl Transport for SshTransport {
    async fn probe(&self, node: &NodeTarget) -> Result<Probe, PortError> {
        let out = self
            .run(node, &ssh::probe::probe_script(false, 0), Duration::from_secs(120))
            .await?;
        Probe::parse(&out.stdout).map_err(|e| PortError::new(e.to_string()))
    }

    async fn start_upgrade(&self, node: &NodeTarget, command: &str, run_id: &str) -> Result<(), PortError> {
        let o = self
            .run(
                node,
                &ssh::remote::start_detached(command, run_id),
                Duration::from_secs(120),
            )
            .await?;
        if o.success() && o.stdout.contains("started") {
            Ok(())
        } else {
            Err(PortError::new(format!("exit {}: {}", o.exit_code, o.tail(3))))
        }
    }

    async fn wait_upgrade(
        &self,
        node: &NodeTarget,
        run_id: &str,
        max: Duration,
    ) -> Result<Option<(String, i32)>, PortError> {
        let o = self
            .run(
                node,
                &ssh::remote::wait_detached(run_id, max.as_secs().max(1)),
                max + Duration::from_secs(40),
            )
            .await?;
        match ssh::remote::parse_detached(&o.stdout) {
            Some(done) => Ok(Some(done)),
            None if o.stdout.contains(ssh::remote::DETACHED_RUNNING_MARK) => Ok(None),
            None => Err(PortError::new(format!("unexpected output {:?}", o.tail(3)))),
        }
    }

    async fn prefetch(&self, node: &NodeTarget, command: &str) -> Result<(), PortError> {
        let o = self.run(node, command, Duration::from_secs(600)).await?;
        if o.success() {
            Ok(())
        } else {
            Err(PortError::new(format!("exit {}: {}", o.exit_code, o.tail(3))))
        }
    }

    async fn reboot(&self, node: &NodeTarget) -> Result<(), PortError> {
        // The session kept from the upgrade if its connection is still up (one connection
        // less on the critical path), else a fresh one: never a dead one, whose failure
        // would look like the dropped connection a reboot causes.
        let kept = self.sessions.lock().await.remove(&node.name);
        if let Some(s) = kept {
            if s.is_alive().await {
                self.sessions.lock().await.insert(node.name.clone(), s);
            } else {
                let _ = s.close().await;
            }
        }
        let r = self.run(node, &ssh::reboot_command(), Duration::from_secs(60)).await;
        self.disconnect(node).await;
        match r {
            Ok(o) if o.success() => Ok(()),
            Ok(o) => Err(PortError::new(
                SshError::Remote {
                    node: node.name.clone(),
                    command: "reboot".into(),
                    exit_code: o.exit_code,
                    stderr_tail: o.tail(5),
                }
                .to_string(),
            )),
            Err(RunError::Ssh(SshError::Disconnected { .. })) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    async fn disconnect(&self, node: &NodeTarget) {
        if let Some(s) = self.sessions.lock().await.remove(&node.name) {
            let _ = s.close().await;
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
    let mut waits: Vec<BoxFuture<'_, ()>> = vec![];
    for b in blockers {
        match b {
            gate::Blocker::NodeDown { node, .. } | gate::Blocker::NodeInProgress { node, .. } => {
                let api: Api<Node> = Api::all(client.clone());
                let node = node.clone();
                waits.push(
                    async move {
                        let rv = api
                            .get_opt(&node)
                            .await
                            .ok()
                            .flatten()
                            .and_then(|n| n.metadata.resource_version);
                        k::watch::next_change(&api, &node, rv.as_deref(), deadline, max).await
                    }
                    .boxed(),
                );
            }
            gate::Blocker::WorkloadNotReady { workload: w, .. } => match w.kind.as_str() {
                "ReplicaSet" => {
                    let api: Api<ReplicaSet> = Api::namespaced(client.clone(), &w.namespace);
                    let name = w.name.clone();
                    waits.push(
                        async move {
                            let rv = api
                                .get_opt(&name)
                                .await
                                .ok()
                                .flatten()
                                .and_then(|o| o.metadata.resource_version);
                            k::watch::next_change(&api, &name, rv.as_deref(), deadline, max).await
                        }
                        .boxed(),
                    );
                }
                "StatefulSet" => {
                    let api: Api<StatefulSet> = Api::namespaced(client.clone(), &w.namespace);
                    let name = w.name.clone();
                    waits.push(
                        async move {
                            let rv = api
                                .get_opt(&name)
                                .await
                                .ok()
                                .flatten()
                                .and_then(|o| o.metadata.resource_version);
                            k::watch::next_change(&api, &name, rv.as_deref(), deadline, max).await
                        }
                        .boxed(),
                    );
                }
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
