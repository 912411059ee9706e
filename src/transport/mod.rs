//! How aks-patch reaches a node: one small interface ([`NodeShell`]: run a script on a node
//! with a timeout, forget the node) and two implementations, SSH ([`ssh::SshShell`]) and the
//! Kubernetes API ([`kube::KubeShell`]: a node-shell pod per node, `pods/exec` over WebSocket,
//! `nsenter` into the host). The remote scripts stay in `crate::ssh::{probe, remote}`: both
//! transports run the same ones. [`ShellTransport`] is the rollout engine's
//! [`Transport`](crate::rollout::ports::Transport) over any shell, and [`probe_all`] is scan's
//! fan-out.

pub mod kube;
pub mod run_command;
pub mod ssh;

use crate::output::Reporter;
use crate::rollout::ports::{NodeTarget, PortError, Transport};
use crate::ssh::probe::{probe_script, Probe};
use crate::ssh::{remote, CommandOutput};
use async_trait::async_trait;
use futures::stream::{self, StreamExt};
use std::sync::Arc;
use std::time::Duration;

/// Which transport reaches the nodes (`--via`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Via {
    /// SSH to each node's InternalIP (the default).
    #[default]
    Ssh,
    /// A node-shell pod per node, through the Kubernetes API (pods/exec).
    Kube,
    /// VM scale set run commands, through ARM alone.
    RunCommand,
}

impl Via {
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Ssh => "ssh",
            Via::Kube => "kube",
            Via::RunCommand => "run-command",
        }
    }
}

/// A failure of a transport.
#[derive(Debug, thiserror::Error)]
pub enum ShellError {
    #[error(transparent)]
    Ssh(#[from] crate::ssh::SshError),
    #[error(transparent)]
    Kube(#[from] kube::NodeShellError),
    #[error(transparent)]
    RunCommand(#[from] crate::azure::run_command::RunCommandError),
}

impl ShellError {
    /// The connection dropped (expected while a node reboots).
    pub fn disconnected(&self) -> bool {
        match self {
            ShellError::Ssh(crate::ssh::SshError::Disconnected { .. }) => true,
            ShellError::Kube(e) => e.disconnected(),
            _ => false,
        }
    }

    /// The credentials were refused (exit 4).
    pub fn auth(&self) -> bool {
        match self {
            ShellError::Kube(e) => e.auth(),
            ShellError::RunCommand(e) => e.auth(),
            _ => false,
        }
    }
}

/// Run scripts on nodes.
#[async_trait]
pub trait NodeShell: Send + Sync {
    /// Run `script` with `sh` on the node (as root: the scripts use `sudo`, which root has),
    /// at most `timeout`.
    async fn run(&self, node: &NodeTarget, script: &str, timeout: Duration) -> Result<CommandOutput, ShellError>;
    /// Forget what reaches the node (close the SSH session, delete the node-shell pod).
    async fn release(&self, node: &NodeTarget);
    /// Before a reboot: keep the connection to the node only if it is provably up (one
    /// connection less on the critical path), never a dead one, whose failure would look
    /// like the dropped connection a reboot causes. By default: release it.
    async fn keep_if_alive(&self, node: &NodeTarget) {
        self.release(node).await;
    }
    /// Release every node (at the end of a run, on every exit path).
    async fn release_all(&self);
}

/// How long `apt-get update` (with `refresh`) waits for the dpkg/apt lock.
const PROBE_LOCK_TIMEOUT_SECS: u64 = 60;

/// Run `script`, which only reads (a probe, a wait for a result), on the node: a connection
/// cut under it (an SSH session dropped, an exec stream cut) is retried with the one retry
/// policy of API calls ([`crate::kube::Backoff`]): the command changed nothing. Other
/// failures, and a cut that lasts, are returned as they are.
pub async fn run_read_only(
    shell: &dyn NodeShell,
    node: &NodeTarget,
    what: &str,
    script: &str,
    timeout: Duration,
) -> Result<CommandOutput, ShellError> {
    let mut backoff = crate::kube::Backoff::new(crate::kube::RetryPolicy::default());
    loop {
        match shell.run(node, script, timeout).await {
            Err(e) if e.disconnected() => match backoff.after(&format!("{what} node {}", node.name), true, &e) {
                Some(delay) => tokio::time::sleep(delay).await,
                None => return Err(e),
            },
            r => return r,
        }
    }
}

/// Probe one node with `shell`.
pub async fn probe_one(
    shell: &dyn NodeShell,
    node: &NodeTarget,
    script: &str,
    timeout: Duration,
) -> Result<Probe, String> {
    let out = run_read_only(shell, node, "probing", script, timeout)
        .await
        .map_err(|e| e.to_string())?;
    if !out.success() {
        return Err(format!(
            "the probe failed on node {} with exit code {}: {}",
            node.name,
            out.exit_code,
            out.tail(5)
        ));
    }
    Probe::parse(&out.stdout).map_err(|e| format!("node {}: {e}", node.name))
}

/// Probe every node, at most `parallel` at once, each within `per_node_timeout`, releasing
/// each node once probed. Results come back in the order of `nodes`; a node that fails is an
/// `Err` in its row.
pub async fn probe_all(
    shell: &dyn NodeShell,
    nodes: Vec<NodeTarget>,
    parallel: usize,
    refresh: bool,
    per_node_timeout: Duration,
    reporter: &Reporter,
) -> Vec<(String, Result<Probe, String>)> {
    reporter.start_progress(
        nodes.len() as u64,
        if refresh {
            "refreshing and probing nodes"
        } else {
            "probing nodes"
        },
    );
    let script = probe_script(refresh, PROBE_LOCK_TIMEOUT_SECS);
    let mut results: Vec<(usize, String, Result<Probe, String>)> = stream::iter(nodes.into_iter().enumerate())
        .map(|(i, node)| {
            let script = &script;
            async move {
                let r = match tokio::time::timeout(per_node_timeout, probe_one(shell, &node, script, per_node_timeout))
                    .await
                {
                    Ok(r) => r,
                    Err(_) => Err(format!(
                        "the probe on node {} timed out after {}s",
                        node.name,
                        per_node_timeout.as_secs()
                    )),
                };
                shell.release(&node).await;
                match &r {
                    Ok(p) => reporter.verbose(&format!(
                        "{}: kernel {}, {} pending ({} security){}",
                        node.name,
                        p.running_kernel,
                        p.pending_count(),
                        p.security_count(),
                        if p.reboot_required { ", reboot required" } else { "" }
                    )),
                    Err(e) => reporter.verbose(&format!("{}: {e}", node.name)),
                }
                reporter.inc(1);
                (i, node.name, r)
            }
        })
        .buffer_unordered(parallel.max(1))
        .collect()
        .await;
    reporter.finish_and_clear();
    results.sort_by_key(|(i, _, _)| *i);
    results.into_iter().map(|(_, n, r)| (n, r)).collect()
}

fn port(e: ShellError) -> PortError {
    PortError {
        auth: e.auth(),
        message: e.to_string(),
    }
}

/// The rollout engine's transport over any [`NodeShell`].
pub struct ShellTransport {
    pub shell: Arc<dyn NodeShell>,
    /// The nodes' scale set instances, to restart a node through ARM when the reboot command
    /// cannot be given (a hung SSH session or node-shell pod).
    pub arm_restart: Option<Arc<crate::azure::run_command::RunCommandNodes>>,
    /// What each node's running upgrade was last seen waiting for (the dpkg lock).
    lock_waits: std::sync::Mutex<std::collections::BTreeMap<String, remote::PackageLockWait>>,
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
    pub fn with_arm_restart(mut self, nodes: Arc<crate::azure::run_command::RunCommandNodes>) -> Self {
        self.arm_restart = Some(nodes);
        self
    }

    /// The reboot command could not be given (refused, hung, the pod never started): restart
    /// the VM through ARM if we can, else report `failure` (`auth`: the refusal was one of
    /// credentials or permissions, exit 4).
    async fn restart_instead(&self, node: &NodeTarget, failure: String, auth: bool) -> Result<(), PortError> {
        let Some(arm) = self.arm_restart.as_ref().filter(|a| a.instance(&node.name).is_ok()) else {
            return Err(PortError { message: failure, auth });
        };
        tracing::warn!("node {}: {failure}; restarting its VM through ARM instead", node.name);
        arm.restart(&node.name, ARM_RESTART_TIMEOUT)
            .await
            .map_err(|e| PortError {
                auth: e.auth(),
                message: format!("{failure}; the restart through ARM failed too: {e}"),
            })
    }
}

#[async_trait]
impl Transport for ShellTransport {
    async fn probe(&self, node: &NodeTarget) -> Result<Probe, PortError> {
        probe_one(&*self.shell, node, &probe_script(false, 0), Duration::from_secs(120))
            .await
            .map_err(PortError::new)
    }

    async fn start_upgrade(&self, node: &NodeTarget, command: &str, run_id: &str) -> Result<(), PortError> {
        let o = self
            .shell
            .run(node, &remote::start_detached(command, run_id), Duration::from_secs(120))
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
            &remote::wait_detached(run_id, max.as_secs().max(1)),
            max + Duration::from_secs(40),
        )
        .await
        .map_err(port)?;
        let wait = remote::parse_lock_wait(&o.stdout);
        if let Ok(mut waits) = self.lock_waits.lock() {
            match wait {
                Some(w) => waits.insert(node.name.clone(), w),
                None => waits.remove(&node.name),
            };
        }
        match remote::parse_detached(&o.stdout) {
            Some(done) => Ok(Some(done)),
            None if o.stdout.contains(remote::DETACHED_RUNNING_MARK) => Ok(None),
            None => Err(PortError::new(format!("unexpected output {:?}", o.tail(3)))),
        }
    }

    fn upgrade_lock_wait(&self, node: &NodeTarget) -> Option<remote::PackageLockWait> {
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
            self.shell
                .run(node, &crate::ssh::reboot_command(), Duration::from_secs(60)),
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
                let failure = format!("cannot give node {} the reboot command: {e}", node.name);
                self.restart_instead(node, failure, e.auth()).await
            }
            Err(_) => {
                let failure = format!("the reboot command on node {} hung for 90 s", node.name);
                self.restart_instead(node, failure, false).await
            }
        }
    }

    async fn disconnect(&self, node: &NodeTarget) {
        self.shell.release(node).await;
    }
}
