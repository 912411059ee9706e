//! The emulated Kubernetes API server (placeholder: being written).
use crate::Shared;
use std::sync::Arc;

pub fn router(shared: Arc<Shared>) -> axum::Router {
    axum::Router::new().with_state(shared)
}
