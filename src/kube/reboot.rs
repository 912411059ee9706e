//! Waiting for a rebooted node to be back.
//!
//! A reboot is confirmed by the Node's `status.nodeInfo.bootID` changing (record it before
//! rebooting), then Ready=True and the taints `node.kubernetes.io/not-ready` and
//! `node.kubernetes.io/unreachable` gone. A fast reboot can finish without NotReady ever
//! being observed, so NotReady is reported when seen but never required.

use super::error::{describe_kube_error, is_transient, KubeError};
use super::nodes::{NodeInfo, Readiness, Taint};
use ::kube::api::Api;
use ::kube::Client;
use k8s_openapi::api::core::v1::Node;
use std::fmt;
use std::time::Duration;

/// How often the Node is read while waiting.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Taints that say the node is not back yet.
pub const NOT_READY_TAINTS: [&str; 2] = ["node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"];

/// What was last seen of a node while waiting for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSeen {
    /// The node as last read; `None` when the Node object was not found.
    pub node: Option<NodeInfo>,
    /// Its bootID was another than the one before the reboot (when last read).
    pub boot_id_changed: bool,
    /// The last error reading the Node, if the last read failed.
    pub last_error: Option<String>,
}

impl NodeSeen {
    fn of(node: &Node, old_boot_id: &str) -> NodeSeen {
        let node = NodeInfo::of(node);
        NodeSeen {
            boot_id_changed: node.boot_id.as_deref().is_some_and(|b| b != old_boot_id),
            node: Some(node),
            last_error: None,
        }
    }

    /// The taints that still say the node is not back.
    pub fn not_ready_taints(&self) -> Vec<&Taint> {
        self.node
            .iter()
            .flat_map(|n| &n.taints)
            .filter(|t| NOT_READY_TAINTS.contains(&t.key.as_str()))
            .collect()
    }

    /// Back from the reboot: new bootID, Ready=True, no not-ready/unreachable taint.
    pub fn is_back(&self) -> bool {
        self.boot_id_changed && self.node.as_ref().is_some_and(NodeInfo::is_ready) && self.not_ready_taints().is_empty()
    }
}

impl fmt::Display for NodeSeen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.node {
            None => write!(f, "the Node object was not found")?,
            Some(n) => {
                write!(
                    f,
                    "Ready={}, bootID {}",
                    n.readiness.condition_status().unwrap_or("(no condition)"),
                    if self.boot_id_changed {
                        "changed (it rebooted)"
                    } else {
                        "unchanged (no reboot seen)"
                    }
                )?;
                let t: Vec<String> = self
                    .not_ready_taints()
                    .iter()
                    .map(|t| format!("{}:{}", t.key, t.effect.as_str()))
                    .collect();
                if !t.is_empty() {
                    write!(f, ", taints {}", t.join(", "))?;
                }
            }
        }
        if let Some(e) = &self.last_error {
            write!(f, " (last read failed: {e})")?;
        }
        Ok(())
    }
}

/// Progress while waiting.
#[derive(Debug, Clone, PartialEq)]
pub enum RebootEvent {
    /// The node turned NotReady (or Unknown): it is going down.
    WentNotReady { ready: Readiness },
    /// A new bootID: it booted.
    Booted { boot_id: String },
    /// Ready again, taints gone.
    Back { elapsed: Duration },
    /// Reading the Node failed; still waiting.
    ReadFailed { error: String },
}

#[derive(Debug, thiserror::Error)]
pub enum RebootError {
    #[error("node {node} did not come back within {}s: {last}; leave it cordoned, check it (kubectl describe node {node}, the VM in the Azure portal), and uncordon it by hand once it is healthy", .timeout.as_secs())]
    Timeout {
        node: String,
        timeout: Duration,
        /// The node's last seen state.
        last: Box<NodeSeen>,
    },
    #[error(transparent)]
    Kube(#[from] KubeError),
}

/// Wait until `node` has a bootID other than `old_boot_id`, Ready=True, and neither the
/// not-ready nor the unreachable taint, within `timeout`. Returns the node as it is then.
///
/// Transient API errors and a missing Node object are waited through; other API errors
/// (401, 403) end the wait at once.
pub async fn wait_for_reboot(
    client: &Client,
    node: &str,
    old_boot_id: &str,
    timeout: Duration,
    progress: impl Fn(RebootEvent),
) -> Result<NodeInfo, RebootError> {
    let api: Api<Node> = Api::all(client.clone());
    let start = tokio::time::Instant::now();
    let deadline = start + timeout;
    let mut last = NodeSeen {
        node: None,
        boot_id_changed: false,
        last_error: None,
    };
    let mut reported_not_ready = false;
    let mut reported_boot = false;
    let mut seen_rv: Option<String> = None;
    loop {
        let read = tokio::time::timeout_at(
            deadline.max(tokio::time::Instant::now() + Duration::from_secs(1)),
            api.get_opt(node),
        )
        .await;
        match read {
            Ok(Ok(Some(n))) => {
                seen_rv = n.metadata.resource_version.clone();
                let st = NodeSeen::of(&n, old_boot_id);
                let seen = st.node.as_ref().expect("just read");
                if !reported_not_ready && !st.boot_id_changed && !seen.is_ready() {
                    reported_not_ready = true;
                    progress(RebootEvent::WentNotReady { ready: seen.readiness });
                }
                if !reported_boot && st.boot_id_changed {
                    reported_boot = true;
                    progress(RebootEvent::Booted {
                        boot_id: seen.boot_id.clone().unwrap_or_default(),
                    });
                }
                if st.is_back() {
                    progress(RebootEvent::Back {
                        elapsed: start.elapsed(),
                    });
                    return Ok(st.node.expect("just read"));
                }
                last = st;
            }
            Ok(Ok(None)) => {
                last.node = None;
                last.last_error = None;
            }
            Ok(Err(e)) if is_transient(&e) => {
                let error = describe_kube_error(&e);
                progress(RebootEvent::ReadFailed { error: error.clone() });
                last.last_error = Some(error);
            }
            Ok(Err(e)) => return Err(KubeError::api(format!("reading node {node}"), e).into()),
            Err(_) => last.last_error = Some("the read timed out".into()),
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(RebootError::Timeout {
                node: node.to_string(),
                timeout,
                last: Box::new(last),
            });
        }
        super::watch::next_change(&api, node, seen_rv.as_deref(), deadline, POLL_INTERVAL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{NodeCondition, NodeSpec, NodeStatus, NodeSystemInfo, Taint};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn node(boot: &str, ready: &str, taints: &[&str]) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some("n".into()),
                ..Default::default()
            },
            spec: Some(NodeSpec {
                taints: Some(
                    taints
                        .iter()
                        .map(|k| Taint {
                            key: k.to_string(),
                            effect: "NoSchedule".into(),
                            ..Default::default()
                        })
                        .collect(),
                ),
                unschedulable: Some(true),
                ..Default::default()
            }),
            status: Some(NodeStatus {
                conditions: Some(vec![NodeCondition {
                    type_: "Ready".into(),
                    status: ready.into(),
                    ..Default::default()
                }]),
                node_info: Some(NodeSystemInfo {
                    boot_id: boot.into(),
                    ..Default::default()
                }),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn back_needs_new_boot_ready_and_no_taints() {
        assert!(NodeSeen::of(&node("new", "True", &[]), "old").is_back());
        // The cordon's taint does not count.
        assert!(NodeSeen::of(&node("new", "True", &["node.kubernetes.io/unschedulable"]), "old").is_back());
        // Fast reboot not seen yet: same bootID, still Ready.
        assert!(!NodeSeen::of(&node("old", "True", &[]), "old").is_back());
        assert!(!NodeSeen::of(&node("new", "False", &[]), "old").is_back());
        assert!(!NodeSeen::of(&node("new", "True", &["node.kubernetes.io/not-ready"]), "old").is_back());
        assert!(!NodeSeen::of(&node("new", "True", &["node.kubernetes.io/unreachable"]), "old").is_back());
        assert!(!NodeSeen::of(&node("", "True", &[]), "old").is_back());
    }

    #[test]
    fn state_is_described_plainly() {
        let s = NodeSeen::of(&node("old", "Unknown", &["node.kubernetes.io/unreachable"]), "old").to_string();
        assert!(s.contains("Ready=Unknown"), "{s}");
        assert!(s.contains("unchanged"), "{s}");
        assert!(s.contains("node.kubernetes.io/unreachable"), "{s}");
    }
}
