//! Nodes in kubectl's words: the ten columns of `kubectl get nodes -o wide`, made from the
//! typed [`NodeInfo`] as kubectl's printer makes them (`pkg/printers/internalversion`: STATUS
//! from the Ready condition only, ROLES from the role labels, AGE with apimachinery's
//! `HumanDuration`; missing values as `<none>` for addresses, `<unknown>` for the OS image,
//! kernel and container runtime, an empty VERSION). The unit tests are kubectl's own cases.

use crate::kube::nodes::{NodeInfo, Readiness};
use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

/// STATUS as kubectl prints it (`Ready`, `NotReady,SchedulingDisabled`, ...).
pub fn status(node: &NodeInfo) -> String {
    status_text(node.readiness, node.unschedulable)
}

/// STATUS as kubectl prints it: the Ready condition only, `Ready` when True, `NotReady` when
/// False or Unknown, `Unknown` when there is no Ready condition; then `,SchedulingDisabled`
/// when the node is cordoned.
pub fn status_text(readiness: Readiness, unschedulable: bool) -> String {
    let mut status = match readiness {
        Readiness::Ready => "Ready",
        Readiness::NotReady | Readiness::Unknown => "NotReady",
        Readiness::NoCondition => "Unknown",
    }
    .to_string();
    if unschedulable {
        status.push_str(",SchedulingDisabled");
    }
    status
}

/// ROLES as kubectl prints it: the roles joined with `,`; `<none>` if there is none.
pub fn roles_text(roles: &[String]) -> String {
    if roles.is_empty() {
        "<none>".into()
    } else {
        roles.join(",")
    }
}

/// apimachinery's `HumanDuration`: about 2-3 significant figures, integer division.
pub fn human_duration(d: SignedDuration) -> String {
    // Go: int(d.Seconds()) truncates toward zero; up to 2 s in the future reads as now.
    let seconds = d.as_secs();
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
pub fn age_text(created: Option<Timestamp>, now: Timestamp) -> String {
    match created {
        None => "<unknown>".into(),
        Some(c) => human_duration(now.duration_since(c)),
    }
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
    use crate::kube::nodes::{AddressKind, NodeAddress};

    const S: SignedDuration = SignedDuration::from_secs(1);
    const MS: SignedDuration = SignedDuration::from_millis(1);
    const M: SignedDuration = SignedDuration::from_secs(60);
    const H: SignedDuration = SignedDuration::from_secs(3600);
    const D: SignedDuration = SignedDuration::from_secs(86400);

    /// apimachinery `TestHumanDuration`.
    #[test]
    fn human_duration_kubernetes_cases() {
        let cases: &[(SignedDuration, &str)] = &[
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
            assert_eq!(human_duration(*d), *want, "{d:?}");
        }
    }

    /// apimachinery `TestHumanDurationBoundaries`.
    #[test]
    fn human_duration_kubernetes_boundaries() {
        let y = D * 365;
        let cases: &[(SignedDuration, &str)] = &[
            (-(S * 2), "<invalid>"),
            (-(S * 2) + SignedDuration::from_nanos(1), "0s"),
            (SignedDuration::ZERO, "0s"),
            (S - MS, "0s"),
            (M * 2 - MS, "119s"),
            (M * 2, "2m"),
            (M * 2 + S, "2m1s"),
            (M * 10 - MS, "9m59s"),
            (M * 10, "10m"),
            (M * 10 + S, "10m"),
            (H * 3 - MS, "179m"),
            (H * 3, "3h"),
            (H * 3 + M, "3h1m"),
            (H * 8 - MS, "7h59m"),
            (H * 8, "8h"),
            (H * 8 + M * 59, "8h"),
            (D * 2 - MS, "47h"),
            (D * 2, "2d"),
            (D * 2 + H, "2d1h"),
            (D * 8 - MS, "7d23h"),
            (D * 8, "8d"),
            (D * 8 + H * 23, "8d"),
            (y * 2 - MS, "729d"),
            (y * 2, "2y"),
            (y * 2 + H * 23, "2y"),
            (y * 2 + H * 23 + M * 59, "2y"),
            (y * 2 + H * 24 - MS, "2y"),
            (y * 2 + H * 24, "2y1d"),
            (y * 3, "3y"),
            (y * 4, "4y"),
            (y * 5, "5y"),
            (y * 6, "6y"),
            (y * 7, "7y"),
            (y * 8 - MS, "7y364d"),
            (y * 8, "8y"),
            (y * 8 + D * 364, "8y"),
            (y * 9, "9y"),
        ];
        for (d, want) in cases {
            assert_eq!(human_duration(*d), *want, "{d:?}");
        }
    }

    /// kubectl `TestPrintNodeStatus`: the Ready condition only, then whether it is cordoned.
    #[test]
    fn status_kubectl_cases() {
        use Readiness::*;
        for (readiness, cordoned, want) in [
            (Ready, false, "Ready"),
            (Ready, true, "Ready,SchedulingDisabled"),
            (NotReady, false, "NotReady"),
            (NotReady, true, "NotReady,SchedulingDisabled"),
            // Ready=Unknown (the kubelet stopped posting) prints as NotReady.
            (Unknown, false, "NotReady"),
            (NoCondition, false, "Unknown"),
            (NoCondition, true, "Unknown,SchedulingDisabled"),
        ] {
            assert_eq!(status_text(readiness, cordoned), want, "{readiness:?} {cordoned}");
        }
    }

    /// kubectl `TestPrintNodeRole`: the roles joined, or `<none>`.
    #[test]
    fn roles_kubectl_cases() {
        assert_eq!(roles_text(&[]), "<none>");
        let roles = ["control-plane", "master", "node", "proxy"].map(String::from);
        assert_eq!(roles_text(&roles), "control-plane,master,node,proxy");
        assert_eq!(roles_text(&["agent".to_string()]), "agent");
    }

    #[test]
    fn age_is_unknown_without_a_creation_time() {
        let now: Timestamp = "2025-03-20T12:00:00Z".parse().unwrap();
        assert_eq!(age_text(None, now), "<unknown>");
        assert_eq!(age_text(Some(now - H * (42 * 24 + 5)), now), "42d");
        // Clocks a little apart: a node created just "after" now reads as now.
        assert_eq!(age_text(Some(now + S), now), "0s");
    }

    fn node(name: &str) -> NodeInfo {
        NodeInfo {
            name: name.into(),
            ..Default::default()
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
