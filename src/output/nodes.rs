//! Nodes in kubectl's words: the ten columns of `kubectl get nodes -o wide`, made from the
//! typed [`NodeInfo`] (missing values as kubectl prints them: `<none>` for addresses,
//! `<unknown>` for the OS image, kernel and container runtime, an empty VERSION).

use crate::kube::nodes::{age_text, roles_text, status_text, NodeInfo};
use jiff::Timestamp;
use serde::Serialize;

/// STATUS as kubectl prints it (`Ready`, `NotReady,SchedulingDisabled`, ...).
pub fn status(node: &NodeInfo) -> String {
    status_text(node.readiness, node.unschedulable)
}

/// The columns of `kubectl get nodes -o wide` for one node (`-o json` field names of the
/// commands that show them: `name`, `status`, `roles`, `age`, `version`, `internalIp`,
/// `externalIp`, `osImage`, `kernelVersion`, `containerRuntime`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeColumns {
    pub name: String,
    pub status: String,
    pub roles: String,
    /// As of the `now` the columns were made.
    pub age: String,
    pub version: String,
    pub internal_ip: String,
    pub external_ip: String,
    pub os_image: String,
    pub kernel_version: String,
    pub container_runtime: String,
}

impl NodeColumns {
    /// The columns of `node`, with AGE as of `now`.
    pub fn of(node: &NodeInfo, now: Timestamp) -> NodeColumns {
        let or = |v: Option<&str>, placeholder: &str| v.unwrap_or(placeholder).to_string();
        NodeColumns {
            name: node.name.clone(),
            status: status(node),
            roles: roles_text(&node.roles),
            age: age_text(node.created, now),
            version: node.kubelet_version.clone().unwrap_or_default(),
            internal_ip: or(node.internal_ip(), "<none>"),
            external_ip: or(node.external_ip(), "<none>"),
            os_image: or(node.os_image.as_deref(), "<unknown>"),
            kernel_version: or(node.kernel_version.as_deref(), "<unknown>"),
            container_runtime: or(node.container_runtime.as_deref(), "<unknown>"),
        }
    }

    /// The cells in kubectl's order.
    pub fn cells(&self) -> [&str; 10] {
        [
            &self.name,
            &self.status,
            &self.roles,
            &self.age,
            &self.version,
            &self.internal_ip,
            &self.external_ip,
            &self.os_image,
            &self.kernel_version,
            &self.container_runtime,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube::nodes::{AddressKind, NodeAddress, Readiness};
    use jiff::SignedDuration;

    fn node(name: &str) -> NodeInfo {
        NodeInfo {
            name: name.into(),
            readiness: Readiness::NoCondition,
            unschedulable: false,
            taints: vec![],
            roles: vec![],
            created: None,
            kubelet_version: None,
            kernel_version: None,
            os_image: None,
            container_runtime: None,
            addresses: vec![],
            pool: None,
            zone: None,
            os_type: None,
            os_sku: None,
            node_image_version: None,
            boot_id: None,
            in_progress: None,
        }
    }

    fn addresses(pairs: &[(AddressKind, &str)]) -> Vec<NodeAddress> {
        pairs
            .iter()
            .map(|(kind, a)| NodeAddress {
                kind: kind.clone(),
                address: a.to_string(),
            })
            .collect()
    }

    fn wide(c: &NodeColumns) -> [&str; 5] {
        let cells = c.cells();
        [cells[5], cells[6], cells[7], cells[8], cells[9]]
    }

    /// kubectl `TestPrintNodeOSImage`, `TestPrintNodeKernelVersion`,
    /// `TestPrintNodeContainerRuntimeVersion`, `TestPrintNodeExternalIP`, `TestPrintNodeInternalIP`.
    #[test]
    fn wide_columns_kubectl_cases() {
        use AddressKind::{ExternalIp, InternalIp};
        let now = Timestamp::now();
        let with = |pairs: &[(AddressKind, &str)], os: Option<&str>, kernel: Option<&str>, cr: Option<&str>| {
            let mut n = node("n");
            n.addresses = addresses(pairs);
            n.os_image = os.map(String::from);
            n.kernel_version = kernel.map(String::from);
            n.container_runtime = cr.map(String::from);
            NodeColumns::of(&n, now)
        };
        let cases = vec![
            (
                with(&[(ExternalIp, "1.1.1.1")], Some("fake-os-image"), None, None),
                ["<none>", "1.1.1.1", "fake-os-image", "<unknown>", "<unknown>"],
            ),
            (
                with(&[(ExternalIp, "1.1.1.1")], None, Some("fake-kernel-version"), None),
                ["<none>", "1.1.1.1", "<unknown>", "fake-kernel-version", "<unknown>"],
            ),
            (
                with(&[(ExternalIp, "1.1.1.1")], None, None, Some("foo://1.2.3")),
                ["<none>", "1.1.1.1", "<unknown>", "<unknown>", "foo://1.2.3"],
            ),
            (
                with(&[(InternalIp, "1.1.1.1")], None, None, None),
                ["1.1.1.1", "<none>", "<unknown>", "<unknown>", "<unknown>"],
            ),
            (
                with(
                    &[
                        (ExternalIp, "2.2.2.2"),
                        (InternalIp, "3.3.3.3"),
                        (ExternalIp, "4.4.4.4"),
                    ],
                    None,
                    None,
                    None,
                ),
                ["3.3.3.3", "2.2.2.2", "<unknown>", "<unknown>", "<unknown>"],
            ),
            (
                with(
                    &[
                        (InternalIp, "2.2.2.2"),
                        (ExternalIp, "3.3.3.3"),
                        (InternalIp, "4.4.4.4"),
                    ],
                    None,
                    None,
                    None,
                ),
                ["2.2.2.2", "3.3.3.3", "<unknown>", "<unknown>", "<unknown>"],
            ),
        ];
        for (c, want) in cases {
            assert_eq!(wide(&c), want);
        }
        // Nothing known at all.
        let c = NodeColumns::of(&node("127.0.0.1"), now);
        assert_eq!(
            c.cells(),
            [
                "127.0.0.1",
                "Unknown",
                "<none>",
                "<unknown>",
                "",
                "<none>",
                "<none>",
                "<unknown>",
                "<unknown>",
                "<unknown>"
            ]
        );
    }

    #[test]
    fn an_aks_node_reads_as_kubectl_shows_it_in_json_field_order() {
        let now: Timestamp = "2025-03-20T12:00:00Z".parse().unwrap();
        let mut n = node("aks-user-31417037-vmss000001");
        n.readiness = Readiness::Ready;
        n.unschedulable = true;
        n.roles = vec!["agent".into()];
        n.created = Some(now - SignedDuration::from_hours(3 * 24 + 5));
        n.kubelet_version = Some("v1.31.5".into());
        n.addresses = addresses(&[(AddressKind::InternalIp, "10.224.0.5")]);
        n.os_image = Some("Ubuntu 22.04.5 LTS".into());
        n.kernel_version = Some("5.15.0-1068-azure".into());
        n.container_runtime = Some("containerd://1.7.25-1".into());
        let c = NodeColumns::of(&n, now);
        assert_eq!(
            c.cells(),
            [
                "aks-user-31417037-vmss000001",
                "Ready,SchedulingDisabled",
                "agent",
                "3d5h",
                "v1.31.5",
                "10.224.0.5",
                "<none>",
                "Ubuntu 22.04.5 LTS",
                "5.15.0-1068-azure",
                "containerd://1.7.25-1"
            ]
        );
        let json = serde_json::to_value(&c).unwrap();
        let keys: Vec<&str> = json.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "name",
                "status",
                "roles",
                "age",
                "version",
                "internalIp",
                "externalIp",
                "osImage",
                "kernelVersion",
                "containerRuntime"
            ]
        );
    }
}
