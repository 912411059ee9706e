//! The SSH transport: one session per node (the system `ssh`, see [`crate::ssh::session`]),
//! kept between calls and dropped on failure.

use super::{NodeShell, ShellError};
use crate::node::{CommandOutput, NodeTarget};
use crate::ssh::{self, NodeSession, SshOptions};
use async_trait::async_trait;
use std::collections::HashMap;
use std::time::Duration;

pub struct SshShell {
    opts: SshOptions,
    sessions: tokio::sync::Mutex<HashMap<String, NodeSession>>,
}

impl SshShell {
    pub fn new(opts: SshOptions) -> SshShell {
        SshShell {
            opts,
            sessions: tokio::sync::Mutex::new(HashMap::new()),
        }
    }
}

#[async_trait]
impl NodeShell for SshShell {
    async fn run(&self, node: &NodeTarget, script: &str, timeout: Duration) -> Result<CommandOutput, ShellError> {
        let existing = self.sessions.lock().await.remove(&node.name);
        let s = match existing {
            Some(s) => s,
            None => ssh::connect(&self.opts, &node.name, &node.address).await?,
        };
        match s.run(script, timeout).await {
            Ok(o) => {
                self.sessions.lock().await.insert(node.name.clone(), s);
                Ok(o)
            }
            Err(e) => {
                let _ = s.close().await;
                Err(e.into())
            }
        }
    }

    async fn release(&self, node: &NodeTarget) {
        if let Some(s) = self.sessions.lock().await.remove(&node.name) {
            let _ = s.close().await;
        }
    }

    async fn keep_if_alive(&self, node: &NodeTarget) {
        let kept = self.sessions.lock().await.remove(&node.name);
        if let Some(s) = kept {
            if s.is_alive().await {
                self.sessions.lock().await.insert(node.name.clone(), s);
            } else {
                let _ = s.close().await;
            }
        }
    }

    async fn release_all(&self) {
        let all: Vec<NodeSession> = self.sessions.lock().await.drain().map(|(_, s)| s).collect();
        for s in all {
            let _ = s.close().await;
        }
    }
}
