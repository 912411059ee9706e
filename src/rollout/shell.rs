//! The rollout engine's [`Transport`] over any [`NodeShell`] (SSH, node-shell pods, run
//! commands): the probe, the detached upgrade and its dpkg lock waits, the download ahead,
//! and the reboot, with a restart through ARM when the reboot command cannot be given.

use super::ports::{FailureKind, PortError, Transport};
use crate::azure::run_command::RunCommandNodes;
use crate::node::detached::{self, PackageLockWait};
use crate::node::probe::probe_script;
use crate::node::{reboot_command, NodeTarget, Probe};
use crate::transport::{probe_one, run_read_only, NodeShell, ProbeError, ShellError};
use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;

/// What kind of failure a transport's is.
fn kind(e: &ShellError) -> FailureKind {
    use crate::transport::kube::NodeShellError;
    match e {
        e if e.auth() => FailureKind::Auth,
        e if e.disconnected() => FailureKind::Unreachable,
        ShellError::Ssh(crate::ssh::SshError::Unreachable { .. }) => FailureKind::Unreachable,
        ShellError::Kube(NodeShellError::Timeout { .. } | NodeShellError::StartTimeout { .. }) => FailureKind::Timeout,
        _ => FailureKind::Failed,
    }
}

fn port(e: ShellError) -> PortError {
    PortError::caused_by(kind(&e), e)
}

/// The rollout engine's transport over any [`NodeShell`].
pub struct ShellTransport {
    pub shell: Arc<dyn NodeShell>,
    /// The nodes' scale set instances, to restart a node through ARM when the reboot command
    /// cannot be given (a hung SSH session or node-shell pod).
    pub arm_restart: Option<Arc<RunCommandNodes>>,
    /// What each node's running upgrade was last seen waiting for (the dpkg lock).
    lock_waits: std::sync::Mutex<std::collections::BTreeMap<String, PackageLockWait>>,
}

/// How long a restart through ARM may take (it ends when the VM runs again).
const ARM_RESTART_TIMEOUT: Duration = Duration::from_secs(900);

impl ShellTransport {
    pub fn new(shell: Arc<dyn NodeShell>) -> Self {
        ShellTransport {
            shell,
            arm_restart: None,
            lock_waits: Default::default(),
        }
    }

    /// Restart nodes through ARM when the reboot command cannot be given.
    pub fn with_arm_restart(mut self, nodes: Arc<RunCommandNodes>) -> Self {
        self.arm_restart = Some(nodes);
        self
    }

    /// The reboot command could not be given (refused, hung, the pod never started): restart
    /// the VM through ARM if we can, else report `failure`.
    async fn restart_instead(&self, node: &NodeTarget, failure: PortError) -> Result<(), PortError> {
        let Some(arm) = self.arm_restart.as_ref().filter(|a| a.instance(&node.name).is_ok()) else {
            return Err(failure);
        };
        tracing::warn!("node {}: {failure}; restarting its VM through ARM instead", node.name);
        arm.restart(&node.name, ARM_RESTART_TIMEOUT).await.map_err(|e| {
            let message = format!("{failure}; the restart through ARM failed too: {e}");
            let kind = if e.auth() {
                FailureKind::Auth
            } else {
                FailureKind::Failed
            };
            PortError::caused_by(kind, e).reworded(message)
        })
    }
}

#[async_trait]
impl Transport for ShellTransport {
    async fn probe(&self, node: &NodeTarget) -> Result<Probe, PortError> {
        probe_one(&*self.shell, node, &probe_script(false, 0), Duration::from_secs(120))
            .await
            .map_err(|e| match e {
                ProbeError::Shell(e) => port(e),
                other => PortError::caused_by(FailureKind::Failed, other),
            })
    }

    async fn start_upgrade(&self, node: &NodeTarget, command: &str, run_id: &str) -> Result<(), PortError> {
        let o = self
            .shell
            .run(
                node,
                &detached::start_detached(command, run_id),
                Duration::from_secs(120),
            )
            .await
            .map_err(port)?;
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
        let o = run_read_only(
            &*self.shell,
            node,
            "waiting for the upgrade on",
            &detached::wait_detached(run_id, max.as_secs().max(1)),
            max + Duration::from_secs(40),
        )
        .await
        .map_err(port)?;
        let wait = detached::parse_lock_wait(&o.stdout);
        if let Ok(mut waits) = self.lock_waits.lock() {
            match wait {
                Some(w) => waits.insert(node.name.clone(), w),
                None => waits.remove(&node.name),
            };
        }
        match detached::parse_detached(&o.stdout) {
            Some(done) => Ok(Some(done)),
            None if o.stdout.contains(detached::DETACHED_RUNNING_MARK) => Ok(None),
            None => Err(PortError::new(format!("unexpected output {:?}", o.tail(3)))),
        }
    }

    fn upgrade_lock_wait(&self, node: &NodeTarget) -> Option<PackageLockWait> {
        self.lock_waits.lock().ok()?.get(&node.name).cloned()
    }

    async fn prefetch(&self, node: &NodeTarget, command: &str) -> Result<(), PortError> {
        let o = self
            .shell
            .run(node, command, Duration::from_secs(600))
            .await
            .map_err(port)?;
        if o.success() {
            Ok(())
        } else {
            Err(PortError::new(format!("exit {}: {}", o.exit_code, o.tail(3))))
        }
    }

    async fn reboot(&self, node: &NodeTarget) -> Result<(), PortError> {
        // A live connection or a fresh one; the reboot drops it.
        self.shell.keep_if_alive(node).await;
        let r = tokio::time::timeout(
            Duration::from_secs(90),
            self.shell.run(node, &reboot_command(), Duration::from_secs(60)),
        )
        .await;
        // The connection (session, pod) does not survive the reboot.
        self.shell.release(node).await;
        match r {
            Ok(Ok(o)) if o.success() => Ok(()),
            Ok(Ok(o)) => Err(PortError::new(format!(
                "the reboot command failed on node {} with exit code {}: {}",
                node.name,
                o.exit_code,
                o.tail(5)
            ))),
            Ok(Err(e)) if e.disconnected() => Ok(()),
            // Refused (exec forbidden by an admission policy, RBAC), the pod never started:
            // the command could not be given, so ARM restarts the VM if it can.
            Ok(Err(e)) => {
                let message = format!("cannot give node {} the reboot command: {e}", node.name);
                self.restart_instead(node, port(e).reworded(message)).await
            }
            Err(_) => {
                let failure = PortError::of_kind(
                    FailureKind::Timeout,
                    format!("the reboot command on node {} hung for 90 s", node.name),
                );
                self.restart_instead(node, failure).await
            }
        }
    }

    async fn disconnect(&self, node: &NodeTarget) {
        self.shell.release(node).await;
    }
}
