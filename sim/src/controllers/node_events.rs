//! What the kubelet and the node lifecycle controller report as a node changes: cordon and
//! Ready transitions in the event log and as Kubernetes Events, whoever made them.

use super::*;

/// Record cordon/uncordon and Ready transitions of nodes in the event log, whoever made them.
pub async fn watch_node_changes(shared: Arc<Shared>) {
    let mut rx = shared.store.subscribe();
    let mut last: BTreeMap<String, (bool, String)> = shared
        .store
        .list(store::NODES, None)
        .iter()
        .map(|n| {
            (
                n["metadata"]["name"].as_str().unwrap_or_default().to_string(),
                (
                    n["spec"]["unschedulable"].as_bool().unwrap_or(false),
                    crate::model::ready_status(n).to_string(),
                ),
            )
        })
        .collect();
    let mut shutdown = shared.shutdown.clone();
    loop {
        let change = tokio::select! {
            c = rx.recv() => c,
            _ = shutdown.changed() => return,
        };
        let change = match change {
            Ok(c) => c,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!("node watcher lagged by {n} changes");
                continue;
            }
            Err(_) => return,
        };
        if change.resource != store::NODES {
            continue;
        }
        let name = change.object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let now = (
            change.object["spec"]["unschedulable"].as_bool().unwrap_or(false),
            crate::model::ready_status(&change.object).to_string(),
        );
        let before = last.insert(name.clone(), now.clone());
        let Some(before) = before else { continue };
        if before.0 != now.0 {
            let kind = if now.0 { kinds::CORDON } else { kinds::UNCORDON };
            shared.events.record(kind, Some(&name), None, "");
            // The kubelet reports what it sees of its node's schedulability.
            let reason = if now.0 { "NodeNotSchedulable" } else { "NodeSchedulable" };
            recorder::record(
                &shared,
                &recorder::ObjectRef::kubelet_node(&name),
                recorder::kubelet(&name),
                "Normal",
                reason,
                &format!("Node {name} status is now: {reason}"),
            );
        }
        if before.1 != now.1 {
            let kind = if now.1 == "True" {
                kinds::NODE_READY
            } else {
                kinds::NODE_NOT_READY
            };
            shared
                .events
                .record(kind, Some(&name), None, format!("Ready={}", now.1));
            if now.1 == "True" {
                recorder::record(
                    &shared,
                    &recorder::ObjectRef::kubelet_node(&name),
                    recorder::kubelet(&name),
                    "Normal",
                    "NodeReady",
                    &format!("Node {name} status is now: NodeReady"),
                );
            } else if before.1 == "True" {
                // Unknown is the node lifecycle controller's verdict; NotReady the kubelet's.
                let (what, source) = if now.1 == "Unknown" {
                    (recorder::ObjectRef::of(&change.object), recorder::NODE_CONTROLLER)
                } else {
                    (recorder::ObjectRef::kubelet_node(&name), recorder::kubelet(&name))
                };
                recorder::record(
                    &shared,
                    &what,
                    source,
                    "Normal",
                    "NodeNotReady",
                    &format!("Node {name} status is now: NodeNotReady"),
                );
            }
        }
    }
}
