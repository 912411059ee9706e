//! `--via run-command`: the nodes mapped to their scale set instances (ARM), and a pre-flight
//! run command that proves the identity may run scripts there before anything changes.

use super::context::{azure_failure, ClusterContext};
use crate::azure::run_command::{NodeInstanceRef, RunCommandNodes};
use crate::output::{Exit, Failure, Reporter};
use crate::transport::run_command::RunCommandShell;
use crate::transport::NodeShell;
use std::sync::Arc;
use std::time::Duration;

/// How long the pre-flight run command may take.
const PREFLIGHT_TIMEOUT: Duration = Duration::from_secs(180);

/// The nodes' instances, for restarting a node through ARM when its SSH session or node-shell
/// pod hangs at the reboot; None without ARM (a kubeconfig) or when they cannot be read.
pub async fn restart_fallback(ctx: &ClusterContext, reporter: &Reporter) -> Option<Arc<RunCommandNodes>> {
    let arm = ctx.arm.as_ref()?;
    let node_rg = arm.node_resource_group.as_deref()?;
    let nodes = match crate::kube::nodes::list_nodes(&ctx.client, None).await {
        Ok(n) => n,
        Err(e) => {
            reporter.verbose(&format!(
                "no restart through ARM as a fallback: cannot list the nodes: {e}"
            ));
            return None;
        }
    };
    let refs: Vec<NodeInstanceRef> = nodes.iter().map(NodeInstanceRef::of).collect();
    match RunCommandNodes::map(arm.client.clone(), &arm.subscription, node_rg, &refs).await {
        Ok(m) => Some(Arc::new(m)),
        Err(e) => {
            reporter.verbose(&format!("no restart through ARM as a fallback: {e}"));
            None
        }
    }
}

pub async fn open(ctx: &ClusterContext, reporter: &Reporter) -> anyhow::Result<Arc<dyn NodeShell>> {
    let Some(arm) = &ctx.arm else {
        return Err(Failure::new(
            Exit::Usage,
            "--via run-command reaches the nodes through ARM, but this cluster was given as a kubeconfig",
        )
        .hint("name the cluster with -g RESOURCE_GROUP -n CLUSTER (and --subscription) instead of --kubeconfig")
        .into());
    };
    let Some(node_rg) = arm.node_resource_group.as_deref() else {
        return Err(Failure::new(
            Exit::Failure,
            "--via run-command needs the cluster's node resource group, and ARM did not give one (properties.nodeResourceGroup)",
        )
        .into());
    };
    let nodes = crate::kube::nodes::list_nodes(&ctx.client, None)
        .await
        .map_err(|e| super::context::kube_failure("cannot list the cluster's nodes", e))?;
    let refs: Vec<NodeInstanceRef> = nodes.iter().map(NodeInstanceRef::of).collect();
    let mapped = RunCommandNodes::map(arm.client.clone(), &arm.subscription, node_rg, &refs)
        .await
        .map_err(azure_failure)?;
    for r in &refs {
        if let Err(e) = mapped.instance(&r.name) {
            reporter.verbose(&e.to_string());
        }
    }
    // Pre-flight: one harmless run command, so that refused rights (node resource group
    // lockdown, missing role) stop the run before any change, with the actions named.
    if let Some(first) = refs.iter().find(|r| mapped.instance(&r.name).is_ok()) {
        reporter.verbose(&format!(
            "checking that run commands are allowed (a no-op on node {})",
            first.name
        ));
        match mapped.run(&first.name, "true", PREFLIGHT_TIMEOUT).await {
            Ok(_) => {}
            Err(e) if e.auth() => {
                let hint = e.hint();
                let mut f = Failure::new(Exit::Auth, format!("{e}; nothing was changed"));
                if let Some(h) = hint {
                    f = f.hint(h);
                }
                return Err(f.into());
            }
            // Other failures are that node's own (it shows in its row or halts at it).
            Err(e) => reporter.warn(&format!("pre-flight run command: {e}")),
        }
    }
    Ok(Arc::new(RunCommandShell {
        nodes: Arc::new(mapped),
    }))
}
