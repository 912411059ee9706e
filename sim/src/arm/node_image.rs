//! `upgradeNodeImageVersion` (`az aks nodepool upgrade --node-image-only`): the pool's nodes
//! are reimaged one at a time, as AKS does with `maxSurge` 0: cordon, drain (evictions that
//! respect PodDisruptionBudgets, retried while a budget refuses), reimage to the latest node
//! image (which has the pending updates in it: nothing pending afterwards, the new kernel
//! running), wait for the new bootID and Ready, set the node image label, uncordon (unless the
//! node was cordoned before). The operation's status is served at
//! `.../locations/{loc}/operations/{id}` (and its result at `operationresults`).

use super::routes::{Cluster, Ctx};
use super::{arm_error, ok, ArmState};
use crate::events::kinds;
use crate::model::{self, Readiness};
use crate::objects::pods::DeleteOpts;
use crate::objects::{eviction, pods};
use crate::store::{NODES, PODS};
use crate::Shared;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a node's drain may take before the operation fails.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(120);
const BOOT_TIMEOUT: Duration = Duration::from_secs(120);
const IMAGE_LABEL: &str = "kubernetes.azure.com/node-image-version";

async fn upgrade_pool(shared: Arc<Shared>, op: String, pool: String, nodes: Vec<String>, image: String) {
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

#[derive(Debug, Clone)]
pub(super) struct Operation {
    pool: String,
    started: String,
    ended: Option<String>,
    /// `InProgress`, `Succeeded` or `Failed`.
    status: String,
    error: Option<String>,
    /// Nodes reimaged so far, of `total`.
    done: usize,
    total: usize,
}

impl ArmState {
    pub(super) fn image(&self, pool: &str) -> Option<String> {
        self.pool_images
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(pool)
            .cloned()
    }

    pub(super) fn running(&self, pool: &str) -> bool {
        self.operations
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .any(|o| o.pool == pool && o.status == "InProgress")
    }

    fn update(&self, id: &str, f: impl FnOnce(&mut Operation)) {
        if let Some(o) = self.operations.lock().unwrap_or_else(|p| p.into_inner()).get_mut(id) {
            f(o);
        }
    }

    /// One more node of the operation reimaged.
    fn progress(&self, id: &str) {
        self.update(id, |o| o.done += 1);
    }

    /// The operation ended: with the pool on `image`, or failed with `error`.
    fn finish(&self, id: &str, pool: &str, image: Option<&str>, error: Option<String>) {
        if let Some(i) = image {
            self.pool_images
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(pool.to_string(), i.to_string());
        }
        let now = crate::time::now_rfc3339_millis();
        self.update(id, |o| {
            o.status = if error.is_some() { "Failed" } else { "Succeeded" }.into();
            o.ended = Some(now);
            o.error = error;
        });
    }

    pub(super) fn get(&self, id: &str) -> Option<Operation> {
        self.operations
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
    }
}

impl<'a> Ctx<'a> {
    /// `POST .../agentPools/{p}/upgradeNodeImageVersion` (`az aks nodepool upgrade
    /// --node-image-only`): a long-running operation that reimages the pool's nodes one at a
    /// time (cordon, drain respecting budgets, reimage to the latest node image, which has the
    /// pending updates in it, uncordon) and answers 202 with `Azure-AsyncOperation` and
    /// `Location`.
    pub(super) fn upgrade_node_image(&self, c: Cluster, p: usize) -> Response {
        let s = self.shared;
        let spec = &s.scenario.pools[p];
        if !matches!(c, Cluster::Main) {
            return arm_error(
                StatusCode::CONFLICT,
                "OperationNotAllowed",
                format!(
                    "Operation is not allowed: the managed cluster '{}' is stopped.",
                    self.cluster_name(c)
                ),
            );
        }
        if s.arm_state.running(&spec.name) {
            return arm_error(
                StatusCode::CONFLICT,
                "OperationNotAllowed",
                format!(
                    "Operation is not allowed because there's an in progress upgrade node image version operation on agent pool '{}'. Please wait for it to finish before starting a new operation.",
                    spec.name
                ),
            );
        }
        let shared = self.shared.clone();
        let id = uuid::Uuid::new_v4().to_string();
        let nodes: Vec<String> = self.pool_nodes(c, p).iter().map(|n| n.name.clone()).collect();
        s.arm_state.operations.lock().unwrap_or_else(|p| p.into_inner()).insert(
            id.clone(),
            Operation {
                pool: spec.name.clone(),
                started: crate::time::now_rfc3339_millis(),
                ended: None,
                status: "InProgress".into(),
                error: None,
                done: 0,
                total: nodes.len(),
            },
        );
        let latest = spec
            .latest_node_image_version
            .clone()
            .unwrap_or_else(|| self.pool_image(c, p));
        tokio::spawn(upgrade_pool(shared, id.clone(), spec.name.clone(), nodes, latest));
        let base = self.shared.endpoints().arm_url.clone();
        let loc = &s.scenario.cluster.location;
        let sub = self.sub();
        let api = self.api_version;
        let mut body = self.agent_pool_json(c, p);
        body["properties"]["provisioningState"] = json!("UpgradingNodeImageVersion");
        let mut r = (StatusCode::ACCEPTED, axum::Json(body)).into_response();
        let h = r.headers_mut();
        for (name, kind) in [("azure-asyncoperation", "operations"), ("location", "operationresults")] {
            let url = format!(
                "{base}/subscriptions/{sub}/providers/Microsoft.ContainerService/locations/{loc}/{kind}/{id}?api-version={api}"
            );
            if let Ok(v) = HeaderValue::from_str(&url) {
                h.insert(HeaderName::from_static(name), v);
            }
        }
        h.insert("retry-after", HeaderValue::from(1));
        r
    }

    /// An operation's status (`Azure-AsyncOperation`), or its result (`Location`: 202 while
    /// it runs, then the agent pool).
    pub(super) fn operation(&self, id: &str, results: bool) -> Response {
        let Some(op) = self.shared.arm_state.get(id) else {
            return arm_error(
                StatusCode::NOT_FOUND,
                "NotFound",
                format!("Operation '{id}' was not found."),
            );
        };
        if results {
            if op.status == "InProgress" {
                let mut r = StatusCode::ACCEPTED.into_response();
                r.headers_mut().insert("retry-after", HeaderValue::from(1));
                return r;
            }
            let p = self
                .shared
                .scenario
                .pools
                .iter()
                .position(|x| x.name == op.pool)
                .unwrap_or(0);
            return ok(self.agent_pool_json(Cluster::Main, p));
        }
        let mut v = json!({
            "id": format!("/subscriptions/{}/providers/Microsoft.ContainerService/locations/{}/operations/{id}", self.sub(), self.shared.scenario.cluster.location),
            "name": id,
            "status": op.status,
            "startTime": op.started,
            "percentComplete": if op.total == 0 { 100.0 } else { 100.0 * op.done as f64 / op.total as f64 },
        });
        if let Some(e) = &op.ended {
            v["endTime"] = json!(e);
        }
        if let Some(e) = &op.error {
            v["error"] = json!({"code": "UpgradeFailed", "message": e});
        }
        let mut r = ok(v);
        if op.status == "InProgress" {
            r.headers_mut().insert("retry-after", HeaderValue::from(1));
        }
        r
    }
}
