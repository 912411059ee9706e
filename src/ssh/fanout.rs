//! Probe many nodes at once, with bounded concurrency and a per-node time limit.

use super::probe::{probe_script, Probe};
use super::session::{connect, SshError, SshOptions};
use crate::output::Reporter;
use futures::stream::{self, StreamExt};
use std::time::Duration;

/// How long `apt-get update` (with `refresh`) waits for the dpkg/apt lock.
const PROBE_LOCK_TIMEOUT_SECS: u64 = 60;

/// Connect to each node, run the probe, log out. At most `parallel` nodes at once; each
/// node gets `per_node_timeout` for all of it. Results come back in the order of `nodes`
/// (name, address); a node that fails is an `Err` in its row, never a panic or an early
/// return. The reporter's progress bar advances per node and is cleared at the end.
pub async fn probe_all(
    opts: &SshOptions,
    nodes: Vec<(String, String)>,
    parallel: usize,
    refresh: bool,
    per_node_timeout: Duration,
    reporter: &Reporter,
) -> Vec<(String, Result<Probe, SshError>)> {
    let total = nodes.len();
    reporter.start_progress(
        total as u64,
        if refresh {
            "refreshing and probing nodes"
        } else {
            "probing nodes"
        },
    );
    let script = probe_script(refresh, PROBE_LOCK_TIMEOUT_SECS);
    let mut results: Vec<(usize, String, Result<Probe, SshError>)> = stream::iter(nodes.into_iter().enumerate())
        .map(|(i, (name, address))| {
            let script = &script;
            async move {
                let r = match tokio::time::timeout(
                    per_node_timeout,
                    probe_one(opts, &name, &address, script, per_node_timeout),
                )
                .await
                {
                    Ok(r) => r,
                    Err(_) => Err(SshError::Timeout {
                        node: name.clone(),
                        what: "SSH probe".into(),
                        after: per_node_timeout,
                    }),
                };
                match &r {
                    Ok(p) => reporter.verbose(&format!(
                        "{name}: kernel {}, {} pending ({} security){}",
                        p.running_kernel,
                        p.pending_count(),
                        if p.classifies_security() {
                            p.security_count().to_string()
                        } else {
                            "n/a".to_string()
                        },
                        if p.reboot_required { ", reboot required" } else { "" }
                    )),
                    Err(e) => reporter.verbose(&format!("{name}: {e}")),
                }
                reporter.inc(1);
                (i, name, r)
            }
        })
        .buffer_unordered(parallel.max(1))
        .collect()
        .await;
    reporter.finish_and_clear();
    results.sort_by_key(|(i, _, _)| *i);
    results.into_iter().map(|(_, n, r)| (n, r)).collect()
}

/// Probe one node (connect, run the probe script, close).
pub async fn probe_node(
    opts: &SshOptions,
    node: &str,
    address: &str,
    refresh: bool,
    timeout: Duration,
) -> Result<Probe, SshError> {
    let script = probe_script(refresh, PROBE_LOCK_TIMEOUT_SECS);
    match tokio::time::timeout(timeout, probe_one(opts, node, address, &script, timeout)).await {
        Ok(r) => r,
        Err(_) => Err(SshError::Timeout {
            node: node.to_string(),
            what: "SSH probe".into(),
            after: timeout,
        }),
    }
}

async fn probe_one(
    opts: &SshOptions,
    node: &str,
    address: &str,
    script: &str,
    timeout: Duration,
) -> Result<Probe, SshError> {
    let session = connect(opts, node, address).await?;
    let out = session.run(script, timeout).await;
    let _ = session.close().await;
    let out = out?;
    if !out.success() {
        return Err(SshError::Remote {
            node: node.to_string(),
            command: "probe".into(),
            exit_code: out.exit_code,
            stderr_tail: out.tail(5),
        });
    }
    Probe::parse(&out.stdout).map_err(|e| SshError::Other {
        node: node.to_string(),
        message: e.to_string(),
        source: Some(Box::new(e)),
    })
}
