//! What went wrong talking to a node over SSH.

use std::path::PathBuf;
use std::time::Duration;

/// What went wrong talking to a node.
#[derive(Debug, thiserror::Error)]
pub enum SshError {
    /// The SSH options are wrong (bad `--ssh-jump`, missing key file, …).
    #[error("{0}")]
    Config(String),
    /// No SSH connection: refused, no route, timed out connecting, name not resolved.
    #[error("cannot reach node {node} at {address} over SSH: {reason}")]
    Unreachable {
        node: String,
        address: String,
        reason: String,
        #[source]
        source: Option<openssh::Error>,
    },
    /// The node refused the login (key not authorized, no usable key).
    #[error(
        "node {node} ({address}) refused the SSH login of user {user}: {reason}. Check --ssh-user and --ssh-key (or your ssh agent): the key must be the cluster's linuxProfile key"
    )]
    AuthRefused {
        node: String,
        address: String,
        user: String,
        reason: String,
        #[source]
        source: Option<openssh::Error>,
    },
    /// The node's host key differs from the one recorded.
    #[error(
        "the SSH host key of node {node} ({address}) has changed since it was recorded in {}. If the node was re-imaged, new keys are expected: clear the old one with `{clear_command}` and retry; otherwise someone may be intercepting the connection",
        known_hosts.display()
    )]
    HostKeyChanged {
        node: String,
        address: String,
        known_hosts: PathBuf,
        clear_command: String,
    },
    /// Strict host key checking and the node's key is not known yet.
    #[error(
        "the SSH host key of node {node} ({address}) is not in {} and --ssh-strict-host-keys refuses unknown keys: add the node's verified key to that file, or run once without --ssh-strict-host-keys to record it",
        known_hosts.display()
    )]
    HostKeyUnknown {
        node: String,
        address: String,
        known_hosts: PathBuf,
    },
    /// The operation did not finish in time.
    #[error("{what} on node {node} timed out after {}s", after.as_secs())]
    Timeout {
        node: String,
        what: String,
        after: Duration,
    },
    /// The session dropped (expected while a node reboots).
    #[error("the SSH session to node {node} ({address}) was closed")]
    Disconnected {
        node: String,
        address: String,
        #[source]
        source: Option<openssh::Error>,
    },
    /// The remote command ran and failed.
    #[error("`{command}` failed on node {node} with exit code {exit_code}: {stderr_tail}")]
    Remote {
        node: String,
        command: String,
        exit_code: i32,
        stderr_tail: String,
    },
    /// Anything else (ssh could not be started, the probe output made no sense, …).
    #[error("SSH to node {node}: {message}")]
    Other {
        node: String,
        message: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
    },
}

impl SshError {
    /// A short stable name of the kind of failure, for json output: `config`,
    /// `unreachable`, `auth-refused`, `host-key-changed`, `host-key-unknown`, `timeout`,
    /// `disconnected`, `remote`, `other`.
    pub fn kind(&self) -> &'static str {
        match self {
            SshError::Config(_) => "config",
            SshError::Unreachable { .. } => "unreachable",
            SshError::AuthRefused { .. } => "auth-refused",
            SshError::HostKeyChanged { .. } => "host-key-changed",
            SshError::HostKeyUnknown { .. } => "host-key-unknown",
            SshError::Timeout { .. } => "timeout",
            SshError::Disconnected { .. } => "disconnected",
            SshError::Remote { .. } => "remote",
            SshError::Other { .. } => "other",
        }
    }

    /// The node the error is about (`None` for option errors).
    pub fn node(&self) -> Option<&str> {
        match self {
            SshError::Config(_) => None,
            SshError::Unreachable { node, .. }
            | SshError::AuthRefused { node, .. }
            | SshError::HostKeyChanged { node, .. }
            | SshError::HostKeyUnknown { node, .. }
            | SshError::Timeout { node, .. }
            | SshError::Disconnected { node, .. }
            | SshError::Remote { node, .. }
            | SshError::Other { node, .. } => Some(node),
        }
    }
}
