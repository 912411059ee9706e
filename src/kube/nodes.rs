//! Nodes as `kubectl get nodes -o wide` shows them, plus what aks-patch needs to know about
//! each (pool, OS, node image, bootID, ...).
//!
//! The columns are computed as kubectl's printer does (`pkg/printers/internalversion`):
//! STATUS from the Ready condition only, ROLES from the role labels, AGE with
//! apimachinery's `HumanDuration`. The unit tests are kubectl's own test cases.

use super::error::KubeError;
use super::list::list_all;
use super::retry::with_retry;
use ::kube::api::{Api, ListParams};
use ::kube::Client;
use chrono::{DateTime, TimeDelta, Utc};
use k8s_openapi::api::core::v1::Node;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// One node: the ten columns of `kubectl get nodes -o wide`, then aks-patch's own fields.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeRow {
    pub name: String,
    /// `Ready`, `NotReady` or `Unknown`, plus `,SchedulingDisabled`.
    pub status: String,
    /// Sorted roles joined by `,`, or `<none>`.
    pub roles: String,
    /// As kubectl prints it (`42d`, `3h5m`, ...) when the row was made; `<unknown>` without
    /// a creation time.
    pub age: String,
    /// The kubelet version (empty when unknown, as kubectl leaves it).
    pub version: String,
    pub internal_ip: String,
    pub external_ip: String,
    pub os_image: String,
    pub kernel_version: String,
    pub container_runtime: String,
    /// Node pool: label `agentpool`, else `kubernetes.azure.com/agentpool`.
    pub pool: Option<String>,
    /// `linux` / `windows` (label `kubernetes.io/os`).
    pub os_type: Option<String>,
    /// `Ubuntu`, `AzureLinux`, `Windows2022`, ... (label `kubernetes.azure.com/os-sku`).
    pub os_sku: Option<String>,
    /// Label `kubernetes.azure.com/node-image-version`.
    pub node_image_version: Option<String>,
    pub unschedulable: bool,
    /// The Ready condition is `True`.
    pub ready: bool,
    /// `status.nodeInfo.bootID`: changes on every boot.
    pub boot_id: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
    /// The aks-patch run that has this node out of service (annotation
    /// `aks-patch.io/in-progress`), if any.
    pub in_progress: Option<String>,
}

/// STATUS as kubectl prints it: the Ready condition only (the last one wins if the list has
/// several), `Ready` when True, `NotReady` when False or Unknown, `Unknown` when there is no
/// Ready condition; then `,SchedulingDisabled` when the node is cordoned.
pub fn node_status(ready_condition: Option<&str>, unschedulable: bool) -> String {
    let mut status = match ready_condition {
        Some("True") => "Ready".to_string(),
        Some(_) => "NotReady".to_string(),
        None => "Unknown".to_string(),
    };
    if unschedulable {
        status.push_str(",SchedulingDisabled");
    }
    status
}

/// ROLES as kubectl prints it: the suffixes of `node-role.kubernetes.io/<role>` labels and the
/// value of `kubernetes.io/role`, deduplicated, sorted, joined with `,`; `<none>` if empty.
pub fn node_roles(labels: &BTreeMap<String, String>) -> String {
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
    if roles.is_empty() {
        "<none>".into()
    } else {
        roles.into_iter().collect::<Vec<_>>().join(",")
    }
}

/// apimachinery's `HumanDuration`: about 2-3 significant figures, integer division.
pub fn human_duration(d: TimeDelta) -> String {
    // Go: int(d.Seconds()) truncates toward zero; up to 2 s in the future reads as now.
    let nanos = d
        .num_nanoseconds()
        .unwrap_or(if d < TimeDelta::zero() { i64::MIN } else { i64::MAX });
    let seconds = nanos / 1_000_000_000;
    if seconds < -1 {
        return "<invalid>".into();
    } else if seconds < 0 {
        return "0s".into();
    } else if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        if s == 0 {
            return format!("{minutes}m");
        }
        return format!("{minutes}m{s}s");
    } else if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        let m = minutes % 60;
        if m == 0 {
            return format!("{hours}h");
        }
        return format!("{hours}h{m}m");
    } else if hours < 48 {
        return format!("{hours}h");
    } else if hours < 24 * 8 {
        let h = hours % 24;
        if h == 0 {
            return format!("{}d", hours / 24);
        }
        return format!("{}d{}h", hours / 24, h);
    } else if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    } else if hours < 24 * 365 * 8 {
        let dy = (hours / 24) % 365;
        if dy == 0 {
            return format!("{}y", hours / 24 / 365);
        }
        return format!("{}y{}d", hours / 24 / 365, dy);
    }
    format!("{}y", hours / 24 / 365)
}

/// AGE: `<unknown>` without a creation time, else [`human_duration`] of `now - created`.
pub fn node_age(created: Option<DateTime<Utc>>, now: DateTime<Utc>) -> String {
    match created {
        None => "<unknown>".into(),
        Some(c) => human_duration(now - c),
    }
}

/// The status of the node's Ready condition (`True`, `False`, `Unknown`), the last one if
/// there are several, as kubectl's map of conditions by type keeps it.
pub fn ready_condition(node: &Node) -> Option<String> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .rev()
        .find(|c| c.type_ == "Ready")
        .map(|c| c.status.clone())
}

/// The row for one node, with AGE as of `now`.
pub fn node_row(node: &Node, now: DateTime<Utc>) -> NodeRow {
    let empty = BTreeMap::new();
    let labels = node.metadata.labels.as_ref().unwrap_or(&empty);
    let unschedulable = node.spec.as_ref().and_then(|s| s.unschedulable).unwrap_or(false);
    let ready = ready_condition(node);
    let status = node.status.as_ref();
    let info = status.and_then(|s| s.node_info.as_ref());
    let address = |t: &str| {
        status
            .and_then(|s| s.addresses.as_ref())
            .and_then(|a| a.iter().find(|a| a.type_ == t))
            .map(|a| a.address.clone())
            .unwrap_or_else(|| "<none>".into())
    };
    let or_unknown = |v: Option<&String>| match v {
        Some(v) if !v.is_empty() => v.clone(),
        _ => "<unknown>".to_string(),
    };
    let created = node.metadata.creation_timestamp.as_ref().and_then(super::time::time);
    let label = |k: &str| labels.get(k).filter(|v| !v.is_empty()).cloned();
    NodeRow {
        name: node.metadata.name.clone().unwrap_or_default(),
        status: node_status(ready.as_deref(), unschedulable),
        roles: node_roles(labels),
        age: node_age(created, now),
        version: info.map(|i| i.kubelet_version.clone()).unwrap_or_default(),
        internal_ip: address("InternalIP"),
        external_ip: address("ExternalIP"),
        os_image: or_unknown(info.map(|i| &i.os_image)),
        kernel_version: or_unknown(info.map(|i| &i.kernel_version)),
        container_runtime: or_unknown(info.map(|i| &i.container_runtime_version)),
        pool: label("agentpool").or_else(|| label("kubernetes.azure.com/agentpool")),
        os_type: label("kubernetes.io/os"),
        os_sku: label("kubernetes.azure.com/os-sku"),
        node_image_version: label("kubernetes.azure.com/node-image-version"),
        unschedulable,
        ready: ready.as_deref() == Some("True"),
        boot_id: info.map(|i| i.boot_id.clone()).filter(|b| !b.is_empty()),
        created_at: created,
        in_progress: super::mark::in_progress_run(node).map(str::to_string),
    }
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

/// The rows for every node (or those matching `label_selector`), with AGE as of now.
pub async fn list_node_rows(client: &Client, label_selector: Option<&str>) -> Result<Vec<NodeRow>, KubeError> {
    let nodes = list_nodes(client, label_selector).await?;
    let now = Utc::now();
    Ok(nodes.iter().map(|n| node_row(n, now)).collect())
}

/// One Node object, retried on transient errors. `Ok(None)` when there is no such node.
pub async fn get_node(client: &Client, name: &str) -> Result<Option<Node>, KubeError> {
    let api: Api<Node> = Api::all(client.clone());
    let what = format!("reading node {name}");
    with_retry(&what, || api.get_opt(name))
        .await
        .map_err(|e| KubeError::api(what, e))
}

/// One node's row. `Ok(None)` when there is no such node.
pub async fn get_node_row(client: &Client, name: &str) -> Result<Option<NodeRow>, KubeError> {
    Ok(get_node(client, name).await?.map(|n| node_row(&n, Utc::now())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{NodeAddress, NodeCondition, NodeSpec, NodeStatus, NodeSystemInfo};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
    use std::time::Duration;

    fn td(d: Duration) -> TimeDelta {
        TimeDelta::from_std(d).unwrap()
    }
    const S: Duration = Duration::from_secs(1);
    const MS: Duration = Duration::from_millis(1);
    const M: Duration = Duration::from_secs(60);
    const H: Duration = Duration::from_secs(3600);
    const D: Duration = Duration::from_secs(86400);

    /// apimachinery `TestHumanDuration`.
    #[test]
    fn human_duration_kubernetes_cases() {
        let cases: &[(Duration, &str)] = &[
            (S, "1s"),
            (S * 70, "70s"),
            (S * 190, "3m10s"),
            (M * 70, "70m"),
            (H * 47, "47h"),
            (H * 49, "2d1h"),
            (H * (8 * 24 + 2), "8d"),
            (H * (367 * 24), "367d"),
            (H * (365 * 2 * 24 + 25), "2y1d"),
            (H * (365 * 8 * 24 + 2), "8y"),
        ];
        for (d, want) in cases {
            assert_eq!(human_duration(td(*d)), *want, "{d:?}");
        }
    }

    /// apimachinery `TestHumanDurationBoundaries`.
    #[test]
    fn human_duration_kubernetes_boundaries() {
        let y = D * 365;
        let cases: &[(TimeDelta, &str)] = &[
            (-td(S * 2), "<invalid>"),
            (-td(S * 2) + TimeDelta::nanoseconds(1), "0s"),
            (TimeDelta::zero(), "0s"),
            (td(S - MS), "0s"),
            (td(M * 2 - MS), "119s"),
            (td(M * 2), "2m"),
            (td(M * 2 + S), "2m1s"),
            (td(M * 10 - MS), "9m59s"),
            (td(M * 10), "10m"),
            (td(M * 10 + S), "10m"),
            (td(H * 3 - MS), "179m"),
            (td(H * 3), "3h"),
            (td(H * 3 + M), "3h1m"),
            (td(H * 8 - MS), "7h59m"),
            (td(H * 8), "8h"),
            (td(H * 8 + M * 59), "8h"),
            (td(D * 2 - MS), "47h"),
            (td(D * 2), "2d"),
            (td(D * 2 + H), "2d1h"),
            (td(D * 8 - MS), "7d23h"),
            (td(D * 8), "8d"),
            (td(D * 8 + H * 23), "8d"),
            (td(y * 2 - MS), "729d"),
            (td(y * 2), "2y"),
            (td(y * 2 + H * 23), "2y"),
            (td(y * 2 + H * 23 + M * 59), "2y"),
            (td(y * 2 + H * 24 - MS), "2y"),
            (td(y * 2 + H * 24), "2y1d"),
            (td(y * 3), "3y"),
            (td(y * 4), "4y"),
            (td(y * 5), "5y"),
            (td(y * 6), "6y"),
            (td(y * 7), "7y"),
            (td(y * 8 - MS), "7y364d"),
            (td(y * 8), "8y"),
            (td(y * 8 + D * 364), "8y"),
            (td(y * 9), "9y"),
        ];
        for (d, want) in cases {
            assert_eq!(human_duration(*d), *want, "{d:?}");
        }
    }

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

    /// kubectl `TestPrintNodeStatus`: (name, status, roles, age, version).
    #[test]
    fn status_kubectl_cases() {
        let now = Utc::now();
        let cases = vec![
            (
                with_conditions(node("foo1"), vec![cond("Ready", "True")], false),
                "Ready",
            ),
            (
                with_conditions(node("foo2"), vec![cond("Ready", "True")], true),
                "Ready,SchedulingDisabled",
            ),
            (
                with_conditions(node("foo3"), vec![cond("Ready", "True"), cond("Ready", "True")], false),
                "Ready",
            ),
            (
                with_conditions(node("foo4"), vec![cond("Ready", "False")], false),
                "NotReady",
            ),
            (
                with_conditions(node("foo5"), vec![cond("Ready", "False")], true),
                "NotReady,SchedulingDisabled",
            ),
            (
                with_conditions(node("foo6"), vec![cond("InvalidValue", "True")], false),
                "Unknown",
            ),
            (with_conditions(node("foo7"), vec![cond("", "")], false), "Unknown"),
            (
                with_conditions(node("foo8"), vec![cond("InvalidValue", "True")], true),
                "Unknown,SchedulingDisabled",
            ),
            (
                with_conditions(node("foo9"), vec![cond("", "")], true),
                "Unknown,SchedulingDisabled",
            ),
            // Ready=Unknown (kubelet stopped posting) prints as NotReady.
            (
                with_conditions(node("foo10"), vec![cond("Ready", "Unknown")], false),
                "NotReady",
            ),
        ];
        for (n, want) in cases {
            let r = node_row(&n, now);
            assert_eq!(r.status, want, "{}", r.name);
            assert_eq!(r.roles, "<none>");
            assert_eq!(r.age, "<unknown>");
            assert_eq!(r.version, "");
        }
    }

    /// kubectl `TestPrintNodeRole`.
    #[test]
    fn roles_kubectl_cases() {
        let labels = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
        };
        assert_eq!(node_roles(&labels(&[])), "<none>");
        assert_eq!(
            node_roles(&labels(&[
                ("node-role.kubernetes.io/master", ""),
                ("node-role.kubernetes.io/control-plane", ""),
                ("node-role.kubernetes.io/proxy", ""),
                ("kubernetes.io/role", "node"),
            ])),
            "control-plane,master,node,proxy"
        );
        assert_eq!(node_roles(&labels(&[("kubernetes.io/role", "node")])), "node");
        // AKS agent nodes; duplicates collapse; empty suffix and empty value are ignored.
        assert_eq!(
            node_roles(&labels(&[
                ("kubernetes.io/role", "agent"),
                ("node-role.kubernetes.io/agent", ""),
                ("node-role.kubernetes.io/", "x"),
            ])),
            "agent"
        );
        assert_eq!(node_roles(&labels(&[("kubernetes.io/role", "")])), "<none>");
    }

    fn with_info(mut n: Node, addresses: Vec<(&str, &str)>, info: NodeSystemInfo) -> Node {
        n.status = Some(NodeStatus {
            addresses: Some(
                addresses
                    .into_iter()
                    .map(|(t, a)| NodeAddress {
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

    /// kubectl `TestPrintNodeOSImage`, `TestPrintNodeKernelVersion`,
    /// `TestPrintNodeContainerRuntimeVersion`, `TestPrintNodeExternalIP`, `TestPrintNodeInternalIP`.
    #[test]
    fn wide_columns_kubectl_cases() {
        let now = Utc::now();
        let wide = |r: &NodeRow| {
            vec![
                r.internal_ip.clone(),
                r.external_ip.clone(),
                r.os_image.clone(),
                r.kernel_version.clone(),
                r.container_runtime.clone(),
            ]
        };
        let info = |os: &str, kernel: &str, cr: &str| NodeSystemInfo {
            os_image: os.into(),
            kernel_version: kernel.into(),
            container_runtime_version: cr.into(),
            ..Default::default()
        };
        let cases = vec![
            (
                with_info(
                    node("a"),
                    vec![("ExternalIP", "1.1.1.1")],
                    info("fake-os-image", "", ""),
                ),
                ["<none>", "1.1.1.1", "fake-os-image", "<unknown>", "<unknown>"],
            ),
            (
                with_info(
                    node("b"),
                    vec![("ExternalIP", "1.1.1.1")],
                    info("", "fake-kernel-version", ""),
                ),
                ["<none>", "1.1.1.1", "<unknown>", "fake-kernel-version", "<unknown>"],
            ),
            (
                with_info(node("c"), vec![("ExternalIP", "1.1.1.1")], info("", "", "foo://1.2.3")),
                ["<none>", "1.1.1.1", "<unknown>", "<unknown>", "foo://1.2.3"],
            ),
            (
                with_info(node("d"), vec![("InternalIP", "1.1.1.1")], info("", "", "")),
                ["1.1.1.1", "<none>", "<unknown>", "<unknown>", "<unknown>"],
            ),
            (
                with_info(
                    node("e"),
                    vec![
                        ("ExternalIP", "2.2.2.2"),
                        ("InternalIP", "3.3.3.3"),
                        ("ExternalIP", "4.4.4.4"),
                    ],
                    info("", "", ""),
                ),
                ["3.3.3.3", "2.2.2.2", "<unknown>", "<unknown>", "<unknown>"],
            ),
            (
                with_info(
                    node("f"),
                    vec![
                        ("InternalIP", "2.2.2.2"),
                        ("ExternalIP", "3.3.3.3"),
                        ("InternalIP", "4.4.4.4"),
                    ],
                    info("", "", ""),
                ),
                ["2.2.2.2", "3.3.3.3", "<unknown>", "<unknown>", "<unknown>"],
            ),
        ];
        for (n, want) in cases {
            let r = node_row(&n, now);
            assert_eq!(wide(&r), want.map(String::from).to_vec(), "{}", r.name);
        }
        // No status at all.
        let r = node_row(&node("127.0.0.1"), now);
        assert_eq!(r.status, "Unknown");
        assert_eq!(
            wide(&r),
            ["<none>", "<none>", "<unknown>", "<unknown>", "<unknown>"]
                .map(String::from)
                .to_vec()
        );
    }

    #[test]
    fn aks_fields_and_age() {
        let now = DateTime::parse_from_rfc3339("2025-03-20T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let created = now - TimeDelta::days(42) - TimeDelta::hours(5);
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
        n.metadata.creation_timestamp = Some(Time(super::super::time::to_jiff(created)));
        n.metadata.labels = Some(
            [
                ("kubernetes.azure.com/agentpool", "user"),
                ("kubernetes.io/os", "linux"),
                ("kubernetes.azure.com/os-sku", "Ubuntu"),
                (
                    "kubernetes.azure.com/node-image-version",
                    "AKSUbuntu-2204gen2containerd-202501.12.0",
                ),
                ("kubernetes.io/role", "agent"),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        );
        n.status.as_mut().unwrap().conditions = Some(vec![cond("Ready", "True")]);
        let r = node_row(&n, now);
        assert_eq!(r.age, "42d");
        assert_eq!(r.roles, "agent");
        assert_eq!(r.pool.as_deref(), Some("user"));
        assert_eq!(r.os_type.as_deref(), Some("linux"));
        assert_eq!(r.os_sku.as_deref(), Some("Ubuntu"));
        assert!(r.ready && !r.unschedulable);
        assert_eq!(r.boot_id.as_deref(), Some("3f1c"));
        assert_eq!(r.created_at, Some(created));
        let json = serde_json::to_value(&r).unwrap();
        for key in [
            "name",
            "status",
            "roles",
            "age",
            "version",
            "internalIp",
            "externalIp",
            "osImage",
            "kernelVersion",
            "containerRuntime",
            "pool",
            "osType",
            "osSku",
            "nodeImageVersion",
            "unschedulable",
            "ready",
            "bootId",
            "createdAt",
        ] {
            assert!(json.get(key).is_some(), "missing {key} in {json}");
        }
    }
}
