//! `--via run-command`: the [`NodeShell`] over VM scale set run commands (ARM alone). The
//! mapping of nodes to instances, the run commands and the output framing live in
//! [`crate::azure::run_command`]; this is the adapter.

use super::{NodeShell, ShellError};
use crate::azure::run_command::RunCommandNodes;
use crate::node::CommandOutput;
use crate::node::NodeTarget;
use async_trait::async_trait;
use std::sync::Arc;
use std::time::Duration;

/// Scripts on nodes through ARM run commands.
pub struct RunCommandShell {
    pub nodes: Arc<RunCommandNodes>,
}

/// The part of the caller's timeout a run command may take on the VM; the rest is for ARM to
/// report its end and for the run command's removal, so that an outer timeout never leaves
/// a run command behind on the VM.
fn agent_timeout(timeout: Duration) -> Duration {
    (timeout * 3 / 4).max(Duration::from_secs(1))
}

#[async_trait]
impl NodeShell for RunCommandShell {
    async fn run(&self, node: &NodeTarget, script: &str, timeout: Duration) -> Result<CommandOutput, ShellError> {
        Ok(self.nodes.run(&node.name, script, agent_timeout(timeout)).await?)
    }

    /// Nothing is held between run commands.
    async fn release(&self, _node: &NodeTarget) {}

    async fn release_all(&self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_agent_gets_three_quarters_of_the_timeout() {
        assert_eq!(agent_timeout(Duration::from_secs(120)), Duration::from_secs(90));
        assert_eq!(agent_timeout(Duration::from_millis(400)), Duration::from_secs(1));
    }
}
