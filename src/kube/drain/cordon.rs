//! Cordon and uncordon, and the mark of a node in aks-patch's hands.

use super::super::error::KubeError;
use super::super::mark::IN_PROGRESS_ANNOTATION;
use super::super::nodes::get_node;
use crate::retry::with_retry;
use ::kube::api::{Api, Patch, PatchParams};
use ::kube::Client;
use k8s_openapi::api::core::v1::Node;

// ---------------------------------------------------------------------------------------
// Cordon

/// Cordon a node (strategic-merge patch `{"spec":{"unschedulable":true}}`). Returns whether
/// it was already cordoned (then nothing is changed).
pub async fn cordon(client: &Client, node: &str) -> Result<bool, KubeError> {
    let n = get_node(client, node).await?.ok_or_else(|| no_such_node(node))?;
    if n.spec.as_ref().and_then(|s| s.unschedulable).unwrap_or(false) {
        return Ok(true);
    }
    patch_unschedulable(client, node, serde_json::json!(true)).await?;
    Ok(false)
}

/// Uncordon a node (strategic-merge patch `{"spec":{"unschedulable":null}}`). Returns whether
/// it was cordoned.
pub async fn uncordon(client: &Client, node: &str) -> Result<bool, KubeError> {
    let n = get_node(client, node).await?.ok_or_else(|| no_such_node(node))?;
    if !n.spec.as_ref().and_then(|s| s.unschedulable).unwrap_or(false) {
        return Ok(false);
    }
    patch_unschedulable(client, node, serde_json::Value::Null).await?;
    Ok(true)
}

/// Cordon a node and mark it as in the hands of run `run_id` ([`IN_PROGRESS_ANNOTATION`]),
/// in one patch. Returns whether it was already cordoned (by someone else: it then stays so).
pub async fn cordon_marked(client: &Client, node: &str, run_id: &str) -> Result<bool, KubeError> {
    let n = get_node(client, node).await?.ok_or_else(|| no_such_node(node))?;
    let was = n.spec.as_ref().and_then(|s| s.unschedulable).unwrap_or(false);
    let patch = serde_json::json!({
        "metadata": {"annotations": {IN_PROGRESS_ANNOTATION: run_id}},
        "spec": {"unschedulable": true},
    });
    patch_node(client, node, &patch, "cordoning").await?;
    Ok(was)
}

/// Take the node out of our hands: remove [`IN_PROGRESS_ANNOTATION`], and uncordon it when
/// `uncordon` (not when somebody else had cordoned it before us).
pub async fn release_node(client: &Client, node: &str, uncordon: bool) -> Result<(), KubeError> {
    let mut patch = serde_json::json!({"metadata": {"annotations": {IN_PROGRESS_ANNOTATION: null}}});
    if uncordon {
        patch["spec"] = serde_json::json!({"unschedulable": null});
    }
    patch_node(client, node, &patch, if uncordon { "uncordoning" } else { "unmarking" }).await?;
    Ok(())
}

pub(super) async fn patch_node(
    client: &Client,
    node: &str,
    patch: &serde_json::Value,
    what: &str,
) -> Result<Node, KubeError> {
    let api: Api<Node> = Api::all(client.clone());
    let pp = PatchParams::default();
    let patch = Patch::Strategic(patch);
    // The patch says the same thing however often it is sent: safe to retry.
    let doing = format!("{what} node {node}");
    with_retry(&doing, || api.patch(node, &pp, &patch))
        .await
        .map_err(|e| KubeError::api(doing.clone(), e))
}

pub(super) fn no_such_node(node: &str) -> KubeError {
    KubeError::api(
        format!("reading node {node}"),
        ::kube::Error::Api(
            ::kube::core::Status::failure(&format!("nodes \"{node}\" not found"), "NotFound")
                .with_code(404)
                .boxed(),
        ),
    )
}

pub(super) async fn patch_unschedulable(
    client: &Client,
    node: &str,
    value: serde_json::Value,
) -> Result<Node, KubeError> {
    let api: Api<Node> = Api::all(client.clone());
    let patch = serde_json::json!({"spec": {"unschedulable": value}});
    let what = if value.is_null() { "uncordoning" } else { "cordoning" };
    let pp = PatchParams::default();
    let patch = Patch::Strategic(&patch);
    // The patch says the same thing however often it is sent: safe to retry.
    let what = format!("{what} node {node}");
    with_retry(&what, || api.patch(node, &pp, &patch))
        .await
        .map_err(|e| KubeError::api(what, e))
}
