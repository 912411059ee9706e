//! Nodes as the Kubernetes API describes them, in typed values ([`NodeInfo`]): readiness,
//! cordon, taints, roles, versions, addresses, and what aks-patch needs to know about each
//! (pool, zone, OS, node image, bootID, the run that has it in hand).
//!
//! Readiness and roles are read as kubectl's printer reads them (`pkg/printers/internalversion`:
//! the last Ready condition, the role labels); the unit tests use kubectl's own cases. The words
//! kubectl prints for them (STATUS, ROLES, AGE) are made in `output::nodes`.

use super::error::KubeError;
use super::list::list_all;
use crate::retry::with_retry;
use ::kube::api::{Api, ListParams};
use ::kube::Client;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Node;
use std::collections::{BTreeMap, BTreeSet};

/// The node's Ready condition, as the kubelet last posted it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Readiness {
    /// `Ready=True`.
    Ready,
    /// `Ready=False`: the kubelet says the node is not ready.
    NotReady,
    /// `Ready=Unknown` (or any other value): the kubelet stopped posting its status.
    Unknown,
    /// No Ready condition at all (a node that has just registered).
    #[default]
    NoCondition,
}

impl Readiness {
    /// From the status of the Ready condition (`True`, `False`, `Unknown`; `None` without one).
    pub fn from_condition(status: Option<&str>) -> Readiness {
        match status {
            Some("True") => Readiness::Ready,
            Some("False") => Readiness::NotReady,
            Some(_) => Readiness::Unknown,
            None => Readiness::NoCondition,
        }
    }

    /// The node's readiness ([`ready_condition`]).
    pub fn of(node: &Node) -> Readiness {
        Readiness::from_condition(ready_condition(node).as_deref())
    }

    pub fn is_ready(self) -> bool {
        self == Readiness::Ready
    }

    /// The Ready condition's status as the API spells it (`True`, `False`, `Unknown`);
    /// `None` without a Ready condition.
    pub fn condition_status(self) -> Option<&'static str> {
        match self {
            Readiness::Ready => Some("True"),
            Readiness::NotReady => Some("False"),
            Readiness::Unknown => Some("Unknown"),
            Readiness::NoCondition => None,
        }
    }
}

/// What a taint does to pods that do not tolerate it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TaintEffect {
    NoSchedule,
    PreferNoSchedule,
    NoExecute,
    /// An effect this version does not know, as the API server returned it.
    Other(String),
}

impl TaintEffect {
    pub fn parse(s: &str) -> TaintEffect {
        match s {
            "NoSchedule" => TaintEffect::NoSchedule,
            "PreferNoSchedule" => TaintEffect::PreferNoSchedule,
            "NoExecute" => TaintEffect::NoExecute,
            other => TaintEffect::Other(other.to_string()),
        }
    }

    /// The API's spelling.
    pub fn as_str(&self) -> &str {
        match self {
            TaintEffect::NoSchedule => "NoSchedule",
            TaintEffect::PreferNoSchedule => "PreferNoSchedule",
            TaintEffect::NoExecute => "NoExecute",
            TaintEffect::Other(s) => s,
        }
    }
}

/// One taint of a node (`spec.taints`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Taint {
    pub key: String,
    /// `None` when the taint has no value (or an empty one).
    pub value: Option<String>,
    pub effect: TaintEffect,
}

/// The kind of a node address (`status.addresses[].type`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum AddressKind {
    InternalIp,
    ExternalIp,
    Hostname,
    InternalDns,
    ExternalDns,
    /// A kind this version does not know, as the API server returned it.
    Other(String),
}

impl AddressKind {
    pub fn parse(s: &str) -> AddressKind {
        match s {
            "InternalIP" => AddressKind::InternalIp,
            "ExternalIP" => AddressKind::ExternalIp,
            "Hostname" => AddressKind::Hostname,
            "InternalDNS" => AddressKind::InternalDns,
            "ExternalDNS" => AddressKind::ExternalDns,
            other => AddressKind::Other(other.to_string()),
        }
    }
}

/// One address of a node, in the order the API server lists them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NodeAddress {
    pub kind: AddressKind,
    pub address: String,
}

/// The node's operating system (label `kubernetes.io/os`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum OsType {
    Linux,
    Windows,
    /// Another value, lowercased.
    Other(String),
}

impl OsType {
    /// From the label's value (or the agent pool's `osType`), ignoring case.
    pub fn parse(s: &str) -> OsType {
        match s.to_ascii_lowercase().as_str() {
            "linux" => OsType::Linux,
            "windows" => OsType::Windows,
            other => OsType::Other(other.to_string()),
        }
    }

    /// The label's spelling: `linux`, `windows`, ...
    pub fn as_str(&self) -> &str {
        match self {
            OsType::Linux => "linux",
            OsType::Windows => "windows",
            OsType::Other(s) => s,
        }
    }
}

/// One node as the API server describes it now, in typed values.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodeInfo {
    pub name: String,
    /// The Ready condition.
    pub readiness: Readiness,
    /// Cordoned (`spec.unschedulable`).
    pub unschedulable: bool,
    pub taints: Vec<Taint>,
    /// The suffixes of the `node-role.kubernetes.io/<role>` labels and the value of
    /// `kubernetes.io/role`: deduplicated, sorted.
    pub roles: Vec<String>,
    pub created: Option<Timestamp>,
    /// `status.nodeInfo` (each `None` when empty).
    pub kubelet_version: Option<String>,
    pub kernel_version: Option<String>,
    pub os_image: Option<String>,
    pub container_runtime: Option<String>,
    pub addresses: Vec<NodeAddress>,
    /// Node pool: label `agentpool`, else `kubernetes.azure.com/agentpool`.
    pub pool: Option<String>,
    /// Label `topology.kubernetes.io/zone`.
    pub zone: Option<String>,
    /// Label `kubernetes.io/os`.
    pub os_type: Option<OsType>,
    /// `Ubuntu`, `AzureLinux`, `Windows2022`, ... (label `kubernetes.azure.com/os-sku`).
    pub os_sku: Option<String>,
    /// Label `kubernetes.azure.com/node-image-version`.
    pub node_image_version: Option<String>,
    /// `status.nodeInfo.bootID`: changes on every boot.
    pub boot_id: Option<String>,
    /// The aks-patch run that has this node out of service (annotation
    /// `aks-patch.io/in-progress`), if any.
    pub in_progress: Option<String>,
}

impl NodeInfo {
    /// The typed view of a Node object.
    pub fn of(node: &Node) -> NodeInfo {
        let empty = BTreeMap::new();
        let labels = node.metadata.labels.as_ref().unwrap_or(&empty);
        let spec = node.spec.as_ref();
        let status = node.status.as_ref();
        let info = status.and_then(|s| s.node_info.as_ref());
        let label = |k: &str| labels.get(k).filter(|v| !v.is_empty()).cloned();
        let non_empty = |v: Option<&String>| v.filter(|v| !v.is_empty()).cloned();
        NodeInfo {
            name: node.metadata.name.clone().unwrap_or_default(),
            readiness: Readiness::of(node),
            unschedulable: spec.and_then(|s| s.unschedulable).unwrap_or(false),
            taints: spec
                .and_then(|s| s.taints.as_ref())
                .map(|ts| {
                    ts.iter()
                        .map(|t| Taint {
                            key: t.key.clone(),
                            value: t.value.clone().filter(|v| !v.is_empty()),
                            effect: TaintEffect::parse(&t.effect),
                        })
                        .collect()
                })
                .unwrap_or_default(),
            roles: roles(labels),
            created: node.metadata.creation_timestamp.as_ref().map(|t| t.0),
            kubelet_version: non_empty(info.map(|i| &i.kubelet_version)),
            kernel_version: non_empty(info.map(|i| &i.kernel_version)),
            os_image: non_empty(info.map(|i| &i.os_image)),
            container_runtime: non_empty(info.map(|i| &i.container_runtime_version)),
            addresses: status
                .and_then(|s| s.addresses.as_ref())
                .map(|a| {
                    a.iter()
                        .map(|a| NodeAddress {
                            kind: AddressKind::parse(&a.type_),
                            address: a.address.clone(),
                        })
                        .collect()
                })
                .unwrap_or_default(),
            pool: label("agentpool").or_else(|| label("kubernetes.azure.com/agentpool")),
            zone: label("topology.kubernetes.io/zone"),
            os_type: label("kubernetes.io/os").map(|t| OsType::parse(&t)),
            os_sku: label("kubernetes.azure.com/os-sku"),
            node_image_version: label("kubernetes.azure.com/node-image-version"),
            boot_id: non_empty(info.map(|i| &i.boot_id)),
            in_progress: super::mark::in_progress_run(node).map(str::to_string),
        }
    }

    /// Ready=True.
    pub fn is_ready(&self) -> bool {
        self.readiness.is_ready()
    }

    /// The run whose pending taint ([`super::mark::PENDING_TAINT`]) the node carries, if any
    /// (an empty value: an unknown run).
    pub fn pending_run(&self) -> Option<&str> {
        self.taints
            .iter()
            .find(|t| t.key == super::mark::PENDING_TAINT)
            .map(|t| t.value.as_deref().unwrap_or(""))
    }

    /// The first address of this kind.
    pub fn address(&self, kind: &AddressKind) -> Option<&str> {
        self.addresses
            .iter()
            .find(|a| a.kind == *kind)
            .map(|a| a.address.as_str())
    }

    /// The first InternalIP (how SSH reaches the node).
    pub fn internal_ip(&self) -> Option<&str> {
        self.address(&AddressKind::InternalIp)
    }

    pub fn external_ip(&self) -> Option<&str> {
        self.address(&AddressKind::ExternalIp)
    }

    /// Labelled `kubernetes.io/os=windows`.
    pub fn is_windows(&self) -> bool {
        self.os_type == Some(OsType::Windows)
    }
}

/// The roles of a node's labels: the suffixes of `node-role.kubernetes.io/<role>` labels and
/// the value of `kubernetes.io/role`, deduplicated and sorted, as kubectl finds them.
fn roles(labels: &BTreeMap<String, String>) -> Vec<String> {
    const PREFIX: &str = "node-role.kubernetes.io/";
    let mut roles = BTreeSet::new();
    for (k, v) in labels {
        if let Some(role) = k.strip_prefix(PREFIX) {
            if !role.is_empty() {
                roles.insert(role.to_string());
            }
        } else if k == "kubernetes.io/role" && !v.is_empty() {
            roles.insert(v.clone());
        }
    }
    roles.into_iter().collect()
}

/// The status of the node's Ready condition (`True`, `False`, `Unknown`), the last one if
/// there are several, as kubectl's map of conditions by type keeps it.
fn ready_condition(node: &Node) -> Option<String> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .rev()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.status.clone())
}

/// Every node (or those matching `label_selector`), in the order the API server returns
/// them (by name), through the [pager](super::list).
pub async fn list_nodes(client: &Client, label_selector: Option<&str>) -> Result<Vec<Node>, KubeError> {
    let api: Api<Node> = Api::all(client.clone());
    let mut lp = ListParams::default();
    if let Some(sel) = label_selector {
        lp = lp.labels(sel);
    }
    list_all(&api, &lp, "listing nodes").await
}

/// Every node (or those matching `label_selector`), in typed values.
pub async fn list_node_infos(client: &Client, label_selector: Option<&str>) -> Result<Vec<NodeInfo>, KubeError> {
    Ok(list_nodes(client, label_selector)
        .await?
        .iter()
        .map(NodeInfo::of)
        .collect())
}

/// One Node object, retried on transient errors. `Ok(None)` when there is no such node.
pub async fn get_node(client: &Client, name: &str) -> Result<Option<Node>, KubeError> {
    let api: Api<Node> = Api::all(client.clone());
    let what = format!("reading node {name}");
    with_retry(&what, || api.get_opt(name))
        .await
        .map_err(|e| KubeError::api(what, e))
}

/// One node, in typed values. `Ok(None)` when there is no such node.
pub async fn get_node_info(client: &Client, name: &str) -> Result<Option<NodeInfo>, KubeError> {
    Ok(get_node(client, name).await?.as_ref().map(NodeInfo::of))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{
        NodeAddress as ApiAddress, NodeCondition, NodeSpec, NodeStatus, NodeSystemInfo, Taint as ApiTaint,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

    fn node(name: &str) -> Node {
        Node {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn cond(type_: &str, status: &str) -> NodeCondition {
        NodeCondition {
            type_: type_.into(),
            status: status.into(),
            ..Default::default()
        }
    }

    fn with_conditions(mut n: Node, conds: Vec<NodeCondition>, unschedulable: bool) -> Node {
        n.status = Some(NodeStatus {
            conditions: Some(conds),
            ..Default::default()
        });
        if unschedulable {
            n.spec = Some(NodeSpec {
                unschedulable: Some(true),
                ..Default::default()
            });
        }
        n
    }

    /// The nodes of kubectl's `TestPrintNodeStatus`: (node, readiness, cordoned); roles, age
    /// and version unknown.
    #[test]
    fn readiness_is_the_last_ready_condition_kubectl_cases() {
        use Readiness::*;
        let cases = vec![
            (
                with_conditions(node("foo1"), vec![cond("Ready", "True")], false),
                Ready,
                false,
            ),
            (
                with_conditions(node("foo2"), vec![cond("Ready", "True")], true),
                Ready,
                true,
            ),
            (
                with_conditions(node("foo3"), vec![cond("Ready", "True"), cond("Ready", "True")], false),
                Ready,
                false,
            ),
            (
                with_conditions(node("foo4"), vec![cond("Ready", "False")], false),
                NotReady,
                false,
            ),
            (
                with_conditions(node("foo5"), vec![cond("Ready", "False")], true),
                NotReady,
                true,
            ),
            (
                with_conditions(node("foo6"), vec![cond("InvalidValue", "True")], false),
                NoCondition,
                false,
            ),
            (
                with_conditions(node("foo7"), vec![cond("", "")], false),
                NoCondition,
                false,
            ),
            (
                with_conditions(node("foo8"), vec![cond("InvalidValue", "True")], true),
                NoCondition,
                true,
            ),
            (
                with_conditions(node("foo9"), vec![cond("", "")], true),
                NoCondition,
                true,
            ),
            // Ready=Unknown: the kubelet stopped posting.
            (
                with_conditions(node("foo10"), vec![cond("Ready", "Unknown")], false),
                Unknown,
                false,
            ),
            // The last Ready condition wins.
            (
                with_conditions(
                    node("foo11"),
                    vec![cond("Ready", "True"), cond("Ready", "False")],
                    false,
                ),
                NotReady,
                false,
            ),
        ];
        for (n, readiness, unschedulable) in cases {
            let i = NodeInfo::of(&n);
            assert_eq!((i.readiness, i.unschedulable), (readiness, unschedulable), "{}", i.name);
            assert!(i.roles.is_empty() && i.created.is_none() && i.kubelet_version.is_none());
        }
    }

    /// The labels of kubectl's `TestPrintNodeRole`.
    #[test]
    fn roles_kubectl_cases() {
        let roles_of = |pairs: &[(&str, &str)]| -> Vec<String> {
            roles(&pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
        };
        assert_eq!(roles_of(&[]), Vec::<String>::new());
        assert_eq!(
            roles_of(&[
                ("node-role.kubernetes.io/master", ""),
                ("node-role.kubernetes.io/control-plane", ""),
                ("node-role.kubernetes.io/proxy", ""),
                ("kubernetes.io/role", "node"),
            ]),
            ["control-plane", "master", "node", "proxy"]
        );
        assert_eq!(roles_of(&[("kubernetes.io/role", "node")]), ["node"]);
        // AKS agent nodes; duplicates collapse; empty suffix and empty value are ignored.
        assert_eq!(
            roles_of(&[
                ("kubernetes.io/role", "agent"),
                ("node-role.kubernetes.io/agent", ""),
                ("node-role.kubernetes.io/", "x"),
            ]),
            ["agent"]
        );
        assert_eq!(roles_of(&[("kubernetes.io/role", "")]), Vec::<String>::new());
    }

    /// A node with these addresses (type, address) and system info.
    pub(crate) fn with_info(mut n: Node, addresses: Vec<(&str, &str)>, info: NodeSystemInfo) -> Node {
        n.status = Some(NodeStatus {
            addresses: Some(
                addresses
                    .into_iter()
                    .map(|(t, a)| ApiAddress {
                        type_: t.into(),
                        address: a.into(),
                    })
                    .collect(),
            ),
            node_info: Some(info),
            ..Default::default()
        });
        n
    }

    #[test]
    fn addresses_keep_their_kind_and_order_and_the_first_of_a_kind_counts() {
        let n = NodeInfo::of(&with_info(
            node("e"),
            vec![
                ("ExternalIP", "2.2.2.2"),
                ("InternalIP", "3.3.3.3"),
                ("Hostname", "e"),
                ("InternalIP", "4.4.4.4"),
                ("Weird", "x"),
            ],
            NodeSystemInfo::default(),
        ));
        assert_eq!(n.internal_ip(), Some("3.3.3.3"));
        assert_eq!(n.external_ip(), Some("2.2.2.2"));
        assert_eq!(n.address(&AddressKind::Hostname), Some("e"));
        assert_eq!(n.addresses.len(), 5);
        assert_eq!(n.addresses[4].kind, AddressKind::Other("Weird".into()));
        // Empty system info reads as unknown, not as empty strings.
        assert_eq!(
            (
                n.kubelet_version,
                n.os_image,
                n.kernel_version,
                n.container_runtime,
                n.boot_id
            ),
            (None, None, None, None, None)
        );
        let bare = NodeInfo::of(&node("127.0.0.1"));
        assert_eq!((bare.internal_ip(), bare.external_ip()), (None, None));
        assert_eq!(bare.readiness, Readiness::NoCondition);
    }

    #[test]
    fn aks_labels_taints_and_times_are_typed() {
        let now: Timestamp = "2025-03-20T12:00:00Z".parse().unwrap();
        let created = now - jiff::SignedDuration::from_hours(42 * 24 + 5);
        let mut n = with_info(
            node("aks-user-31417037-vmss000001"),
            vec![
                ("InternalIP", "10.224.0.5"),
                ("Hostname", "aks-user-31417037-vmss000001"),
            ],
            NodeSystemInfo {
                boot_id: "3f1c".into(),
                kubelet_version: "v1.31.5".into(),
                os_image: "Ubuntu 22.04.5 LTS".into(),
                kernel_version: "5.15.0-1068-azure".into(),
                container_runtime_version: "containerd://1.7.25-1".into(),
                ..Default::default()
            },
        );
        n.metadata.creation_timestamp = Some(Time(created));
        n.metadata.labels = Some(
            [
                ("kubernetes.azure.com/agentpool", "user"),
                ("kubernetes.io/os", "linux"),
                ("kubernetes.azure.com/os-sku", "Ubuntu"),
                (
                    "kubernetes.azure.com/node-image-version",
                    "AKSUbuntu-2204gen2containerd-202501.12.0",
                ),
                ("topology.kubernetes.io/zone", "westeurope-2"),
                ("kubernetes.io/role", "agent"),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        );
        n.metadata.annotations = Some([("aks-patch.io/in-progress".to_string(), "run-1".to_string())].into());
        n.spec = Some(NodeSpec {
            unschedulable: Some(true),
            taints: Some(vec![
                ApiTaint {
                    key: "node.kubernetes.io/unschedulable".into(),
                    effect: "NoSchedule".into(),
                    ..Default::default()
                },
                ApiTaint {
                    key: "dedicated".into(),
                    value: Some("gpu".into()),
                    effect: "NoExecute".into(),
                    ..Default::default()
                },
            ]),
            ..Default::default()
        });
        n.status.as_mut().unwrap().conditions = Some(vec![cond("Ready", "True")]);
        let i = NodeInfo::of(&n);
        assert_eq!(i.readiness, Readiness::Ready);
        assert!(i.is_ready() && i.unschedulable);
        assert_eq!(i.roles, ["agent"]);
        assert_eq!(i.pool.as_deref(), Some("user"));
        assert_eq!(i.zone.as_deref(), Some("westeurope-2"));
        assert_eq!(i.os_type, Some(OsType::Linux));
        assert!(!i.is_windows());
        assert_eq!(i.os_sku.as_deref(), Some("Ubuntu"));
        assert_eq!(
            i.node_image_version.as_deref(),
            Some("AKSUbuntu-2204gen2containerd-202501.12.0")
        );
        assert_eq!(i.kubelet_version.as_deref(), Some("v1.31.5"));
        assert_eq!(i.boot_id.as_deref(), Some("3f1c"));
        assert_eq!(i.created, Some(created));
        assert_eq!(i.in_progress.as_deref(), Some("run-1"));
        assert_eq!(
            i.taints,
            [
                Taint {
                    key: "node.kubernetes.io/unschedulable".into(),
                    value: None,
                    effect: TaintEffect::NoSchedule
                },
                Taint {
                    key: "dedicated".into(),
                    value: Some("gpu".into()),
                    effect: TaintEffect::NoExecute
                },
            ]
        );
    }

    #[test]
    fn os_type_ignores_case_and_keeps_what_it_does_not_know() {
        assert_eq!(OsType::parse("Windows"), OsType::Windows);
        assert_eq!(OsType::parse("linux"), OsType::Linux);
        assert_eq!(OsType::parse("Plan9"), OsType::Other("plan9".into()));
        assert_eq!(OsType::parse("Plan9").as_str(), "plan9");
    }
}
