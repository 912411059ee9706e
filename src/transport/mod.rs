//! How aks-patch reaches a node: one small interface ([`NodeShell`]: run a script on a node
//! with a timeout, forget the node) and three implementations: SSH ([`ssh::SshShell`]), the
//! Kubernetes API ([`kube::KubeShell`]: a node-shell pod per node, `pods/exec` over WebSocket,
//! `nsenter` into the host) and VM scale set run commands ([`run_command::RunCommandShell`]).
//! The scripts are the node's ([`crate::node`]): every transport runs the same ones.
//! [`probe_all`] probes many nodes at once (scan's fan-out); the rollout engine's port over
//! any shell is in `rollout`.

pub mod kube;
pub mod run_command;
pub mod ssh;

use crate::node::probe::probe_script;
use crate::node::{CommandOutput, NodeTarget, Probe, ProbeParseError};
use async_trait::async_trait;
use futures::stream::{self, StreamExt};
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
/// policy of API calls ([`crate::retry::Backoff`]): the command changed nothing. Other
/// failures, and a cut that lasts, are returned as they are.
pub async fn run_read_only(
    shell: &dyn NodeShell,
    node: &NodeTarget,
    what: &str,
    script: &str,
    timeout: Duration,
) -> Result<CommandOutput, ShellError> {
    let mut backoff = crate::retry::Backoff::new(crate::retry::RetryPolicy::default());
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

/// Why a node could not be probed.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The transport could not run the probe.
    #[error(transparent)]
    Shell(#[from] ShellError),
    /// The probe script ran and failed.
    #[error("the probe failed on node {node} with exit code {exit_code}: {tail}")]
    Failed { node: String, exit_code: i32, tail: String },
    /// The probe's output makes no sense.
    #[error("node {node}: {source}")]
    Parse {
        node: String,
        #[source]
        source: ProbeParseError,
    },
    /// The whole probe took longer than it may.
    #[error("the probe on node {node} timed out after {}s", after.as_secs())]
    Timeout { node: String, after: Duration },
}

/// Probe one node with `shell`.
pub async fn probe_one(
    shell: &dyn NodeShell,
    node: &NodeTarget,
    script: &str,
    timeout: Duration,
) -> Result<Probe, ProbeError> {
    let out = run_read_only(shell, node, "probing", script, timeout).await?;
    if !out.success() {
        return Err(ProbeError::Failed {
            node: node.name.clone(),
            exit_code: out.exit_code,
            tail: out.tail(5),
        });
    }
    Probe::parse(&out.stdout).map_err(|source| ProbeError::Parse {
        node: node.name.clone(),
        source,
    })
}

/// How many nodes `scan` and `apply`'s pre-flight probe at once unless told (`--parallel`).
pub const DEFAULT_PARALLEL: u32 = 16;

/// Probe every node, at most `parallel` at once, each within `per_node_timeout`, releasing
/// each node once probed. `probed` hears of each node as it is done (for progress). Results
/// come back in the order of `nodes`; a node that fails is an `Err` in its row, never a panic
/// or an early return.
pub async fn probe_all(
    shell: &dyn NodeShell,
    nodes: Vec<NodeTarget>,
    parallel: usize,
    refresh: bool,
    per_node_timeout: Duration,
    probed: &(dyn Fn(&NodeTarget, &Result<Probe, ProbeError>) + Sync),
) -> Vec<(String, Result<Probe, ProbeError>)> {
    let script = probe_script(refresh, PROBE_LOCK_TIMEOUT_SECS);
    let mut results: Vec<(usize, String, Result<Probe, ProbeError>)> = stream::iter(nodes.into_iter().enumerate())
        .map(|(i, node)| {
            let script = &script;
            async move {
                let r = match tokio::time::timeout(per_node_timeout, probe_one(shell, &node, script, per_node_timeout))
                    .await
                {
                    Ok(r) => r,
                    Err(_) => Err(ProbeError::Timeout {
                        node: node.name.clone(),
                        after: per_node_timeout,
                    }),
                };
                shell.release(&node).await;
                probed(&node, &r);
                (i, node.name, r)
            }
        })
        .buffer_unordered(parallel.max(1))
        .collect()
        .await;
    results.sort_by_key(|(i, _, _)| *i);
    results.into_iter().map(|(_, n, r)| (n, r)).collect()
}
