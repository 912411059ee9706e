//! Emulated Azure Resource Manager (placeholder: being written).
use crate::Shared;
use std::sync::Arc;

pub fn router(shared: Arc<Shared>) -> axum::Router {
    axum::Router::new().with_state(shared)
}

/// Write the stand-in `az` into `<state-dir>/bin/az`.
pub fn write_az_standin(_shared: &Shared) -> anyhow::Result<()> {
    Ok(())
}
