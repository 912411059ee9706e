//! The emulated cluster's nodes: their names, addresses and Node objects as AKS makes
//! them, and the status changes the node lifecycle applies (Ready, taints, bootID, kernel).

use crate::scenario::{self, OsType, PoolSpec, Scenario};
use crate::store::{self, Store, StoreError};
use serde_json::{json, Value};
use std::net::Ipv4Addr;

/// One emulated machine.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeSpec {
    pub name: String,
    pub pool: String,
    pub pool_index: usize,
    /// Index within the pool (the VMSS instance id).
    pub instance: u32,
    pub os_type: OsType,
    pub os_sku: String,
    pub ip: Ipv4Addr,
    /// Position in the cluster (0-based), which its address and pod CIDR follow.
    pub index: usize,
    pub kernel: String,
    pub os_image: String,
    pub node_image_version: String,
    pub vm_size: String,
    pub zone: Option<String>,
    pub ssh_access: bool,
    pub mode: String,
    pub updates: Vec<scenario::PackageUpdate>,
    pub reboot_required: Vec<String>,
    pub cordoned: bool,
}

impl NodeSpec {
    pub fn is_linux(&self) -> bool {
        self.os_type == OsType::Linux
    }
}

pub fn default_kernel(p: &PoolSpec) -> String {
    let sku = p.os_sku.as_deref().unwrap_or("");
    p.kernel.clone().unwrap_or_else(|| match p.os_type {
        OsType::Linux if sku.eq_ignore_ascii_case("AzureLinux") => "6.6.64.2-9.azl3".into(),
        OsType::Linux if sku.eq_ignore_ascii_case("CBLMariner") => "5.15.173.1-1.cm2".into(),
        OsType::Linux => "5.15.0-1068-azure".into(),
        OsType::Windows => "10.0.20348.3207".into(),
    })
}

/// Most nodes per /24 of loopback (`.251` to `.255` are kept for the bastion and spares).
pub const NODES_PER_BLOCK: usize = 250;

/// The address of the `index`-th node (0-based) for the prefix `127.77.X`: the first 250 on
/// `127.77.X.1` to `.250`, the next 250 on `127.78.X.*`, and so on (5,000 nodes reach
/// `127.96.X.250`). Emulators side by side differ in X, so they never collide.
pub fn node_ip(prefix: [u8; 3], index: usize) -> Ipv4Addr {
    let block = (index / NODES_PER_BLOCK) as u8;
    Ipv4Addr::new(
        prefix[0],
        prefix[1].saturating_add(block),
        prefix[2],
        1 + (index % NODES_PER_BLOCK) as u8,
    )
}

/// The node's pod CIDR: `10.244.<index+1>.0/24` for the first 255 nodes, then
/// `10.243.*`, `10.242.*`, ... downwards (a /24 each, as Azure CNI overlay gives).
pub fn pod_cidr(index: usize) -> String {
    let n = index + 1;
    format!("10.{}.{}.0/24", 244 - (n / 256).min(200), n % 256)
}

/// Every node of the scenario, with addresses from [`node_ip`].
pub fn nodes(s: &Scenario, prefix: [u8; 3]) -> Vec<NodeSpec> {
    let mut out = Vec::new();
    let mut index = 0usize;
    for (i, p) in s.pools.iter().enumerate() {
        for k in 0..p.count {
            let name = scenario::node_name(p, i, k);
            let o = s.nodes.get(&name).cloned().unwrap_or_default();
            let os_sku = p.os_sku.clone().unwrap_or_else(|| match p.os_type {
                OsType::Linux => "Ubuntu".into(),
                OsType::Windows => "Windows2022".into(),
            });
            out.push(NodeSpec {
                pool: p.name.clone(),
                pool_index: i,
                instance: k,
                os_type: p.os_type,
                ip: node_ip(prefix, index),
                index,
                kernel: o.kernel.clone().unwrap_or_else(|| default_kernel(p)),
                os_image: p
                    .os_image
                    .clone()
                    .unwrap_or_else(|| match (p.os_type, os_sku.as_str()) {
                        (OsType::Windows, _) => "Windows Server 2022 Datacenter".into(),
                        (_, "AzureLinux") => "Microsoft Azure Linux 3.0".into(),
                        (_, "CBLMariner") => "CBL-Mariner/Linux".into(),
                        _ => "Ubuntu 22.04.5 LTS".into(),
                    }),
                os_sku,
                node_image_version: p
                    .node_image_version
                    .clone()
                    .unwrap_or_else(|| "AKSUbuntu-2204gen2containerd-202501.12.0".into()),
                vm_size: p.vm_size.clone(),
                zone: if p.zones.is_empty() {
                    None
                } else {
                    Some(p.zones[k as usize % p.zones.len()].clone())
                },
                ssh_access: p.ssh_access == "LocalUser",
                mode: p.mode.clone(),
                updates: o.updates.clone().unwrap_or_else(|| p.updates.clone()),
                reboot_required: o.reboot_required.clone(),
                cordoned: o.cordoned,
                name,
            });
            index += 1;
        }
    }
    out
}

pub fn node_resource_group(s: &Scenario) -> String {
    format!("MC_{}_{}_{}", s.resource_group, s.cluster.name, s.cluster.location)
}

pub fn vmss_name(s: &Scenario, n: &NodeSpec) -> String {
    let p = &s.pools[n.pool_index];
    match n.os_type {
        OsType::Linux => format!("aks-{}-{}-vmss", p.name, scenario::vmss_id(p, n.pool_index)),
        OsType::Windows => format!("aks{}", p.name),
    }
}

pub fn provider_id(s: &Scenario, n: &NodeSpec) -> String {
    format!(
        "azure:///subscriptions/{}/resourceGroups/{}/providers/Microsoft.Compute/virtualMachineScaleSets/{}/virtualMachines/{}",
        s.subscription_id,
        node_resource_group(s).to_lowercase(),
        vmss_name(s, n),
        n.instance
    )
}

/// A random bootID (a UUID, as the kernel's boot_id is).
pub fn new_boot_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// The Node object AKS would show for this node.
pub fn node_object(s: &Scenario, n: &NodeSpec, boot_id: &str, created: &str) -> Value {
    let linux = n.is_linux();
    let os = if linux { "linux" } else { "windows" };
    let region = &s.cluster.location;
    let zone = n
        .zone
        .as_ref()
        .map(|z| format!("{region}-{z}"))
        .unwrap_or_else(|| "0".into());
    let mut labels = json!({
        "agentpool": n.pool,
        "beta.kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/instance-type": n.vm_size,
        "beta.kubernetes.io/os": os,
        "failure-domain.beta.kubernetes.io/region": region,
        "failure-domain.beta.kubernetes.io/zone": zone,
        "kubernetes.azure.com/agentpool": n.pool,
        "kubernetes.azure.com/cluster": node_resource_group(s),
        "kubernetes.azure.com/mode": n.mode.to_lowercase(),
        "kubernetes.azure.com/node-image-version": n.node_image_version,
        "kubernetes.azure.com/os-sku": n.os_sku,
        "kubernetes.azure.com/role": "agent",
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/hostname": n.name,
        "kubernetes.io/os": os,
        "kubernetes.io/role": "agent",
        "node.kubernetes.io/instance-type": n.vm_size,
        "topology.kubernetes.io/region": region,
        "topology.kubernetes.io/zone": zone,
    });
    if !linux {
        labels["node.kubernetes.io/windows-build"] = json!("10.0.20348");
    }
    // Scenario validation refuses sizes it does not know; a NodeSpec made by hand falls back to
    // the default pool size.
    let size = crate::resources::vm_size(&n.vm_size)
        .or_else(|| crate::resources::vm_size(scenario::DEFAULT_VM_SIZE))
        .expect("the default VM size is in the table");
    let res = crate::resources::node_resources(size, !linux, &s.cluster.kubernetes_version);
    let (cpu, memory) = (crate::resources::format_cpu, crate::resources::format_memory);
    let runtime = if linux {
        "containerd://1.7.25-1"
    } else {
        "containerd://1.7.20+azure"
    };
    let mut obj = json!({
        "metadata": {
            "name": n.name,
            "labels": labels,
            "annotations": {
                "node.alpha.kubernetes.io/ttl": "0",
                "volumes.kubernetes.io/controller-managed-attach-detach": "true",
                "csi.volume.kubernetes.io/nodeid": format!("{{\"disk.csi.azure.com\":\"{}\"}}", n.name),
            },
            "creationTimestamp": created,
        },
        "spec": {
            "podCIDR": pod_cidr(n.index),
            "podCIDRs": [pod_cidr(n.index)],
            "providerID": provider_id(s, n),
        },
        "status": {
            "addresses": [
                {"type": "InternalIP", "address": n.ip.to_string()},
                {"type": "Hostname", "address": n.name},
            ],
            "allocatable": {"cpu": cpu(res.allocatable.cpu_millis), "ephemeral-storage": "119703055367",
                            "memory": memory(res.allocatable.memory_bytes), "pods": res.pods.to_string()},
            "capacity": {"cpu": cpu(res.capacity.cpu_millis), "ephemeral-storage": "129886128Ki",
                         "memory": memory(res.capacity.memory_bytes), "pods": res.pods.to_string()},
            "conditions": conditions(true, created, &crate::time::now_rfc3339()),
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "architecture": "amd64",
                "bootID": boot_id,
                "containerRuntimeVersion": runtime,
                "kernelVersion": n.kernel,
                "kubeProxyVersion": format!("v{}", s.cluster.kubernetes_version),
                "kubeletVersion": format!("v{}", s.cluster.kubernetes_version),
                "machineID": uuid::Uuid::new_v4().simple().to_string(),
                "operatingSystem": os,
                "osImage": n.os_image,
                "systemUUID": uuid::Uuid::new_v4().to_string(),
            },
        },
    });
    if n.cordoned {
        obj["spec"]["unschedulable"] = json!(true);
        obj["spec"]["taints"] =
            json!([{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule", "timeAdded": created}]);
    }
    obj
}

fn condition(type_: &str, status: &str, reason: &str, message: &str, at: &str, heartbeat: &str) -> Value {
    json!({"type": type_, "status": status, "reason": reason, "message": message, "lastHeartbeatTime": heartbeat, "lastTransitionTime": at})
}

/// The node's conditions, unchanged since `at`, last posted by the kubelet at `heartbeat`.
fn conditions(ready: bool, at: &str, heartbeat: &str) -> Value {
    json!([
        condition(
            "MemoryPressure",
            "False",
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available",
            at,
            heartbeat
        ),
        condition(
            "DiskPressure",
            "False",
            "KubeletHasNoDiskPressure",
            "kubelet has no disk pressure",
            at,
            heartbeat
        ),
        condition(
            "PIDPressure",
            "False",
            "KubeletHasSufficientPID",
            "kubelet has sufficient PID available",
            at,
            heartbeat
        ),
        if ready {
            condition(
                "Ready",
                "True",
                "KubeletReady",
                "kubelet is posting ready status",
                at,
                heartbeat,
            )
        } else {
            condition(
                "Ready",
                "False",
                "KubeletNotReady",
                "container runtime network not ready",
                at,
                heartbeat,
            )
        },
    ])
}

/// What the kubelet (or the node controller) reports about a node's readiness.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// Kubelet posts Ready.
    Ready,
    /// Kubelet is up but not ready yet (just booted): not-ready taint.
    NotReady,
    /// Kubelet stopped posting (rebooting, gone): Unknown, unreachable taints.
    Unknown,
}

/// Set the Ready condition and the matching node-lifecycle taints, as the kubelet and the
/// node lifecycle controller would. Leaves the unschedulable taint alone.
pub fn set_readiness(store: &Store, node: &str, r: Readiness) -> Result<Value, StoreError> {
    let now = crate::time::now_rfc3339();
    store.update_with(store::NODES, None, node, None, |obj| apply_readiness(obj, r, &now))
}

fn apply_readiness(obj: &mut Value, r: Readiness, now: &str) -> Result<(), StoreError> {
    {
        let conds = obj["status"]["conditions"]
            .as_array_mut()
            .ok_or_else(|| StoreError::Invalid("node has no conditions".into()))?;
        for c in conds.iter_mut() {
            let (status, reason, message) = match (c["type"].as_str(), r) {
                (Some("Ready"), Readiness::Ready) => ("True", "KubeletReady", "kubelet is posting ready status"),
                (Some("Ready"), Readiness::NotReady) => (
                    "False",
                    "KubeletNotReady",
                    "container runtime network not ready: NetworkReady=false",
                ),
                (Some(_), Readiness::Unknown) => {
                    ("Unknown", "NodeStatusUnknown", "Kubelet stopped posting node status.")
                }
                (Some(t), _) => match t {
                    "MemoryPressure" => (
                        "False",
                        "KubeletHasSufficientMemory",
                        "kubelet has sufficient memory available",
                    ),
                    "DiskPressure" => ("False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                    _ => (
                        "False",
                        "KubeletHasSufficientPID",
                        "kubelet has sufficient PID available",
                    ),
                },
                _ => continue,
            };
            if c["status"] != status {
                c["lastTransitionTime"] = json!(now);
            }
            c["status"] = json!(status);
            c["reason"] = json!(reason);
            c["message"] = json!(message);
            // The kubelet posts Ready/NotReady (a heartbeat); Unknown is the node lifecycle
            // controller's verdict on a silent kubelet, which keeps its last heartbeat.
            if r != Readiness::Unknown {
                c["lastHeartbeatTime"] = json!(now);
            }
        }
        let mut taints: Vec<Value> = obj["spec"]["taints"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|t| {
                let k = t["key"].as_str().unwrap_or("");
                k != "node.kubernetes.io/not-ready" && k != "node.kubernetes.io/unreachable"
            })
            .collect();
        match r {
            Readiness::Ready => {}
            Readiness::NotReady => {
                taints.push(json!({"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule", "timeAdded": now}))
            }
            Readiness::Unknown => {
                taints.push(json!({"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule", "timeAdded": now}));
                taints.push(json!({"key": "node.kubernetes.io/unreachable", "effect": "NoExecute", "timeAdded": now}));
            }
        }
        if taints.is_empty() {
            if let Some(spec) = obj["spec"].as_object_mut() {
                spec.remove("taints");
            }
        } else {
            obj["spec"]["taints"] = json!(taints);
        }
        Ok(())
    }
}

/// The kubelet posts its node status unchanged: every condition's `lastHeartbeatTime` moves.
pub fn heartbeat(store: &Store, node: &str) -> Result<Value, StoreError> {
    let now = crate::time::now_rfc3339();
    store.update_with(store::NODES, None, node, None, |obj| {
        if let Some(conds) = obj["status"]["conditions"].as_array_mut() {
            for c in conds.iter_mut() {
                c["lastHeartbeatTime"] = json!(now);
            }
        }
        Ok(())
    })
}

/// After a boot: the new bootID and running kernel in nodeInfo, and, when given, the Ready
/// condition the kubelet posts with them. One update, as the kubelet's status patch is one:
/// no client may see the new bootID beside the Ready condition of the previous boot.
pub fn set_boot(
    store: &Store,
    node: &str,
    boot_id: &str,
    kernel: &str,
    readiness: Option<Readiness>,
) -> Result<Value, StoreError> {
    let now = crate::time::now_rfc3339();
    store.update_with(store::NODES, None, node, None, |obj| {
        obj["status"]["nodeInfo"]["bootID"] = json!(boot_id);
        obj["status"]["nodeInfo"]["kernelVersion"] = json!(kernel);
        match readiness {
            Some(r) => apply_readiness(obj, r, &now),
            None => Ok(()),
        }
    })
}

/// The Ready condition's status ("True", "False", "Unknown").
pub fn ready_status(node: &Value) -> &str {
    node["status"]["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
        .and_then(|c| c["status"].as_str())
        .unwrap_or("Unknown")
}

/// The node's address of this `kind` (`InternalIP`, `Hostname`), `<none>` without one.
pub fn node_address(node: &Value, kind: &str) -> String {
    node["status"]["addresses"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["type"] == kind))
        .and_then(|a| a["address"].as_str())
        .unwrap_or("<none>")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_pod_cidrs_beyond_one_block() {
        let p = [127, 77, 9];
        assert_eq!(node_ip(p, 0), Ipv4Addr::new(127, 77, 9, 1));
        assert_eq!(node_ip(p, 249), Ipv4Addr::new(127, 77, 9, 250));
        assert_eq!(node_ip(p, 250), Ipv4Addr::new(127, 78, 9, 1));
        assert_eq!(node_ip(p, 4999), Ipv4Addr::new(127, 96, 9, 250));
        assert_eq!(pod_cidr(0), "10.244.1.0/24");
        assert_eq!(pod_cidr(254), "10.244.255.0/24");
        assert_eq!(pod_cidr(255), "10.243.0.0/24");
        let all: std::collections::BTreeSet<String> = (0..5000).map(pod_cidr).collect();
        assert_eq!(all.len(), 5000, "every node has its own pod CIDR");
    }
}
