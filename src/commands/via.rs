//! `--via ssh|kube`: the command line's choice of transport, turned into a [`NodeShell`]
//! (see [`crate::transport`]). For `--via kube` it first checks the caller's permissions
//! (SelfSubjectAccessReview) and removes the node-shell pods a killed run left behind.

use super::context::ClusterContext;
use crate::cli::{ViaArg, ViaArgs};
use crate::kube::access;
use crate::output::{Exit, Failure, Reporter};
use crate::rollout::journal::TransportOptions;
use crate::settings::Settings;
use crate::ssh::SshOptions;
use crate::transport::kube::{self as tk, KubeShell, KubeShellOptions};
use crate::transport::ssh::SshShell;
use crate::transport::{NodeShell, Via};
use std::sync::Arc;
use std::time::Duration;

pub fn via(args: &ViaArgs) -> Via {
    match args.via {
        ViaArg::Ssh => Via::Ssh,
        ViaArg::Kube => Via::Kube,
        ViaArg::RunCommand => Via::RunCommand,
    }
}

/// The transport of the command line, typed, probing `parallel` nodes at once.
pub fn transport(args: &ViaArgs, parallel: u32) -> TransportOptions {
    TransportOptions {
        via: via(args),
        node_shell_image: args.node_shell_image.clone(),
        node_shell_namespace: args.node_shell_namespace.clone(),
        parallel,
    }
}

/// The transport, ready: SSH sessions on demand, or node-shell pods (permissions checked,
/// leftovers removed) that may take `start_timeout` to start, or run commands.
pub async fn open(
    t: &TransportOptions,
    start_timeout: Duration,
    ssh_opts: &SshOptions,
    ctx: &ClusterContext,
    settings: &Settings,
    reporter: &Reporter,
    run_id: &str,
) -> anyhow::Result<Arc<dyn NodeShell>> {
    match t.via {
        Via::Ssh => return Ok(Arc::new(SshShell::new(ssh_opts.clone()))),
        Via::RunCommand => return super::via_run_command::open(ctx, reporter).await,
        Via::Kube => {}
    }
    let ns = t.node_shell_namespace.as_str();
    let needs = tk::shell_needs(ns);
    match access::denied(&ctx.client, &needs).await {
        Ok(refused) if refused.is_empty() => {}
        Ok(refused) => {
            let list: Vec<String> = refused.iter().map(|(n, _)| n.to_string()).collect();
            return Err(Failure::new(
                Exit::Auth,
                format!(
                    "--via kube needs permission to {}, and the API server says this user may not; nothing was changed",
                    list.join(", ")
                ),
            )
            .hint("grant the Role in docs/rbac-via-kube.yaml and the ClusterRole in docs/rbac.yaml (kubectl apply -f docs/rbac.yaml -f docs/rbac-via-kube.yaml, then bind them to this identity), or use --via ssh")
            .into());
        }
        Err(e) => return Err(super::context::kube_failure("cannot check this user's permissions", e)),
    }
    let shell = KubeShell::new(
        ctx.client.clone(),
        KubeShellOptions {
            namespace: ns.to_string(),
            image: t.node_shell_image.clone(),
            start_timeout,
            run_id: run_id.to_string(),
            owner: format!("{}/{}", settings.host, std::process::id()),
        },
    );
    match shell.remove_leftovers(&settings.host).await {
        Ok((removed, kept)) => {
            if !removed.is_empty() {
                reporter.info(&format!(
                    "removed {} node-shell pod(s) an earlier aks-patch run left in namespace {ns}: {}",
                    removed.len(),
                    removed.join(", ")
                ));
            }
            if !kept.is_empty() {
                reporter.verbose(&format!(
                    "left {} node-shell pod(s) of a live aks-patch run alone: {}",
                    kept.len(),
                    kept.join(", ")
                ));
            }
        }
        Err(e) => reporter.warn(&format!("cannot look for node-shell pods left by earlier runs: {e}")),
    }
    Ok(Arc::new(shell))
}

/// The first Ctrl-C or SIGTERM.
pub async fn interrupted() {
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
