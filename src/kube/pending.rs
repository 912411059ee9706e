//! The pending taint ([`PENDING_TAINT`]): a `PreferNoSchedule` taint with the run id on every
//! node a run has still to patch, so that the pods its drains evict prefer the nodes already
//! patched and move once. Put on and removed keeping the node's other taints.

use super::error::KubeError;
pub use super::mark::{CLEAR_PENDING_BY_HAND, PENDING_TAINT};
use super::nodes::{get_node, TaintEffect};
use crate::retry::with_retry;
use ::kube::api::{Api, Patch, PatchParams};
use ::kube::Client;
use k8s_openapi::api::core::v1::{Node, Taint};

/// The node's taints with the pending taint valued `run_id` (`None`: without it), or `None`
/// when that is what it has already.
fn pending_taints(node: &Node, run_id: Option<&str>) -> Option<Vec<Taint>> {
    let taints = node.spec.as_ref().and_then(|s| s.taints.clone()).unwrap_or_default();
    let wanted = run_id.map(|run| Taint {
        key: PENDING_TAINT.to_string(),
        value: Some(run.to_string()),
        effect: TaintEffect::PreferNoSchedule.as_str().to_string(),
        time_added: None,
    });
    let current = taints.iter().find(|t| t.key == PENDING_TAINT);
    let same = match (current, &wanted) {
        (None, None) => true,
        (Some(c), Some(w)) => c.value == w.value && c.effect == w.effect,
        _ => false,
    };
    if same {
        return None;
    }
    let mut new: Vec<Taint> = taints.into_iter().filter(|t| t.key != PENDING_TAINT).collect();
    new.extend(wanted);
    Some(new)
}

/// How often a change of the pending taint is tried again when the node changed between the
/// read and the write (another controller wrote its taints).
const CONFLICT_TRIES: usize = 5;

/// Put the pending taint valued `run_id` on `node` (`None`: remove it), keeping its other
/// taints: the node is read, and written back with its `resourceVersion` so that a taint
/// written by someone else meanwhile is never lost (a conflict reads it again). Returns
/// whether the node changed; a node that does not exist is left alone.
pub async fn set_pending(client: &Client, node: &str, run_id: Option<&str>) -> Result<bool, KubeError> {
    let api: Api<Node> = Api::all(client.clone());
    let doing = match run_id {
        Some(_) => format!("putting the pending taint on node {node}"),
        None => format!("removing the pending taint from node {node}"),
    };
    let mut tries = 0;
    loop {
        tries += 1;
        let Some(n) = get_node(client, node).await? else {
            return Ok(false);
        };
        let Some(taints) = pending_taints(&n, run_id) else {
            return Ok(false);
        };
        let taints = if taints.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::to_value(&taints).expect("taints serialize")
        };
        let patch = serde_json::json!({
            "metadata": {"resourceVersion": n.metadata.resource_version},
            "spec": {"taints": taints},
        });
        let pp = PatchParams::default();
        let patch = Patch::Merge(&patch);
        // The same resourceVersion: a retry after a cut connection cannot undo a later change.
        match with_retry(&doing, || api.patch(node, &pp, &patch)).await {
            Ok(_) => return Ok(true),
            Err(::kube::Error::Api(s)) if s.code == 409 && tries < CONFLICT_TRIES => continue,
            Err(::kube::Error::Api(s)) if s.code == 404 => return Ok(false),
            Err(e) => return Err(KubeError::api(doing, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube::nodes::NodeInfo;
    use k8s_openapi::api::core::v1::NodeSpec;

    fn node(taints: Vec<Taint>) -> Node {
        Node {
            spec: Some(NodeSpec {
                taints: Some(taints),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn taint(key: &str, value: &str, effect: &str) -> Taint {
        Taint {
            key: key.into(),
            value: Some(value.into()),
            effect: effect.into(),
            time_added: None,
        }
    }

    #[test]
    fn the_pending_taint_is_added_replaced_and_removed_keeping_the_other_taints() {
        let gpu = taint("sku", "gpu", "NoSchedule");
        let added = pending_taints(&node(vec![gpu.clone()]), Some("run-1")).expect("a change");
        assert_eq!(
            added,
            vec![gpu.clone(), taint(PENDING_TAINT, "run-1", "PreferNoSchedule")]
        );
        assert_eq!(
            pending_taints(&node(added.clone()), Some("run-1")),
            None,
            "already there"
        );
        let replaced = pending_taints(&node(added.clone()), Some("run-2")).expect("another run's");
        assert_eq!(
            replaced,
            vec![gpu.clone(), taint(PENDING_TAINT, "run-2", "PreferNoSchedule")]
        );
        assert_eq!(pending_taints(&node(added), None), Some(vec![gpu.clone()]));
        assert_eq!(pending_taints(&node(vec![gpu]), None), None, "nothing to remove");
    }

    #[test]
    fn the_pending_run_is_read_from_the_nodes_taints() {
        let info = NodeInfo::of(&node(vec![taint(PENDING_TAINT, "run-1", "PreferNoSchedule")]));
        assert_eq!(info.pending_run(), Some("run-1"));
        assert_eq!(NodeInfo::of(&node(vec![])).pending_run(), None);
    }
}
