//! `upgradeNodeImageVersion` (`az aks nodepool upgrade --node-image-only`): the pool's nodes
//! are reimaged one at a time, as AKS does with `maxSurge` 0: cordon, drain (evictions that
//! respect PodDisruptionBudgets, retried while a budget refuses), reimage to the latest node
//! image (which has the pending updates in it: nothing pending afterwards, the new kernel
//! running), wait for the new bootID and Ready, set the node image label, uncordon (unless the
//! node was cordoned before).

use crate::events::kinds;
use crate::objects::pods::DeleteOpts;
use crate::objects::{eviction, pods};
use crate::model::{self, Readiness};
use crate::store::{NODES, PODS};
use crate::Shared;
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a node's drain may take before the operation fails.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(120);
const BOOT_TIMEOUT: Duration = Duration::from_secs(120);
const IMAGE_LABEL: &str = "kubernetes.azure.com/node-image-version";

pub async fn upgrade_pool(shared: Arc<Shared>, op: String, pool: String, nodes: Vec<String>, image: String) {
    for node in &nodes {
        if *shared.shutdown.borrow() {
            return;
        }
        if let Err(e) = reimage_node(&shared, node, &image).await {
            shared
                .events
                .record(kinds::REIMAGE, Some(node), None, format!("failed: {e}"));
            shared
                .arm_state
                .finish(&op, &pool, None, Some(format!("node {node}: {e}")));
            return;
        }
        shared.arm_state.progress(&op);
    }
    shared.arm_state.finish(&op, &pool, Some(&image), None);
}

fn set_unschedulable(shared: &Shared, node: &str, on: bool) {
    let _ = shared.store.update_with(NODES, None, node, None, |o| {
        if on {
            o["spec"]["unschedulable"] = json!(true);
        } else if let Some(spec) = o["spec"].as_object_mut() {
            spec.remove("unschedulable");
        }
        Ok(())
    });
}

async fn reimage_node(shared: &Arc<Shared>, node: &str, image: &str) -> Result<(), String> {
    let obj = shared.store.get(NODES, None, node).ok_or("the node is gone")?;
    let was_cordoned = obj["spec"]["unschedulable"].as_bool().unwrap_or(false);
    let old_boot = obj["status"]["nodeInfo"]["bootID"].as_str().unwrap_or("").to_string();
    shared
        .events
        .record(kinds::REIMAGE, Some(node), None, format!("start image={image}"));
    set_unschedulable(shared, node, true);
    drain(shared, node).await?;
    let spec = shared.node(node).ok_or("no such machine")?;
    let root = shared
        .node_runtime
        .get()
        .and_then(|rt| rt.node_root(node))
        .map(|p| p.to_path_buf());
    match root {
        Some(root) => {
            crate::nodes::chroot::reimage(&root, &spec.updates).map_err(|e| format!("{e:#}"))?;
            std::fs::OpenOptions::new()
                .append(true)
                .open(root.join("var/lib/aks-sim/requests"))
                .and_then(|mut f| std::io::Write::write_all(&mut f, b"reboot\treimage\n"))
                .map_err(|e| format!("cannot reimage: {e}"))?;
        }
        None => {
            // A Windows node (no root here): off, a new boot, Ready again.
            let t = &shared.scenario.timing;
            let _ = model::set_readiness(&shared.store, node, Readiness::Unknown);
            tokio::time::sleep(crate::time::secs(t.boot_seconds)).await;
            let _ = model::set_boot(
                &shared.store,
                node,
                &model::new_boot_id(),
                &spec.kernel,
                Some(Readiness::NotReady),
            );
            tokio::time::sleep(crate::time::secs(t.ready_seconds)).await;
            let _ = model::set_readiness(&shared.store, node, Readiness::Ready);
        }
    }
    let deadline = Instant::now() + BOOT_TIMEOUT;
    loop {
        let n = shared.store.get(NODES, None, node).ok_or("the node is gone")?;
        let booted = n["status"]["nodeInfo"]["bootID"]
            .as_str()
            .is_some_and(|b| b != old_boot);
        if booted && model::ready_status(&n) == "True" {
            break;
        }
        if Instant::now() > deadline {
            return Err("not Ready on the new image in time".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = shared.store.update_with(NODES, None, node, None, |o| {
        o["metadata"]["labels"][IMAGE_LABEL] = json!(image);
        Ok(())
    });
    if !was_cordoned {
        set_unschedulable(shared, node, false);
    }
    shared
        .events
        .record(kinds::REIMAGE, Some(node), None, format!("done image={image}"));
    Ok(())
}

/// Evict what `kubectl drain --ignore-daemonsets --delete-emptydir-data --force` would,
/// retrying refusals, and wait for the pods to be gone.
async fn drain(shared: &Arc<Shared>, node: &str) -> Result<(), String> {
    let deadline = Instant::now() + DRAIN_TIMEOUT;
    loop {
        let on_node: Vec<_> = shared
            .store
            .list(PODS, None)
            .into_iter()
            .filter(|p| pods::node_name(p) == Some(node))
            .filter(|p| !p["metadata"]["annotations"]["kubernetes.io/config.mirror"].is_string())
            .filter(|p| pods::controller_ref(p).is_none_or(|o| o["kind"] != "DaemonSet"))
            .collect();
        if on_node.is_empty() {
            return Ok(());
        }
        for p in on_node.iter().filter(|p| !pods::is_terminating(p)) {
            let (ns, name) = (
                p["metadata"]["namespace"].as_str().unwrap_or("default"),
                p["metadata"]["name"].as_str().unwrap_or(""),
            );
            match eviction::evict(shared, ns, name, DeleteOpts::default()) {
                Ok(_) => {}
                Err(e) if e.code == 429 || e.code == 404 => {}
                Err(e) => return Err(format!("cannot evict {ns}/{name}: {}", e.message)),
            }
        }
        if Instant::now() > deadline {
            return Err(format!(
                "drain did not finish in {}s (a PodDisruptionBudget keeps refusing)",
                DRAIN_TIMEOUT.as_secs()
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
