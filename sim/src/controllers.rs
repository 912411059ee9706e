//! Controllers that keep workloads moving (placeholder: being written).
use crate::Shared;
use std::sync::Arc;

/// Create the scenario's workloads (Deployments, DaemonSets, PDBs, pods).
pub fn seed(_shared: &Arc<Shared>) -> anyhow::Result<()> {
    Ok(())
}

/// Run the controllers until shutdown.
pub async fn run(shared: Arc<Shared>) {
    let mut s = shared.shutdown.clone();
    let _ = s.changed().await;
}
