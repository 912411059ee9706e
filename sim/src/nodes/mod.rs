//! The machines behind the nodes (placeholder: being written).
use crate::{Fault, Shared};
use std::sync::Arc;

pub struct NodeRuntime {}

impl NodeRuntime {
    pub async fn start(_shared: &Arc<Shared>) -> anyhow::Result<NodeRuntime> {
        Ok(NodeRuntime {})
    }
    pub fn fault_changed(&self, _shared: &Shared, _fault: &Fault) {}
    pub fn machine_status(&self, _shared: &Shared, _node: &str) -> serde_json::Value {
        serde_json::Value::Null
    }
    pub fn shutdown(&self) {}
}

pub async fn run(shared: Arc<Shared>) {
    let mut s = shared.shutdown.clone();
    let _ = s.changed().await;
}
