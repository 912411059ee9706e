//! Microsoft.Compute: the node resource group's virtual machine scale sets, their model
//! and their instances (with `$expand=instanceView`).

use super::clusters::ssh_public_key;
use super::routes::{Cluster, Ctx};
use crate::ids::{stable_hex, stable_uuid};
use crate::model::{self, NodeSpec};
use serde_json::{json, Value};

impl<'a> Ctx<'a> {
    /// The scale sets in a (node) resource group, with their machines.
    pub(super) fn vmss_in(&self, rg: &str) -> Vec<(String, Vec<&'a NodeSpec>)> {
        let mut out: Vec<(String, Vec<&NodeSpec>)> = vec![];
        if !rg.eq_ignore_ascii_case(&self.node_rg(Cluster::Main)) {
            return out;
        }
        for n in &self.shared.nodes {
            let v = model::vmss_name(&self.shared.scenario, n);
            match out.iter_mut().find(|(name, _)| *name == v) {
                Some((_, list)) => list.push(n),
                None => out.push((v, vec![n])),
            }
        }
        out
    }

    pub(super) fn vmss_json(&self, rg: &str, vmss: &str, nodes: &[&NodeSpec]) -> Value {
        let s = &self.shared.scenario;
        let spec = nodes.first().map(|n| &s.pools[n.pool_index]);
        json!({
            "id": format!("/subscriptions/{}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachineScaleSets/{vmss}", self.sub()),
            "name": vmss,
            "type": "Microsoft.Compute/virtualMachineScaleSets",
            "location": s.cluster.location,
            "sku": {"name": spec.map(|p| p.vm_size.clone()), "tier": "Standard", "capacity": nodes.len()},
            "tags": {"aks-managed-poolName": spec.map(|p| p.name.clone()), "aks-managed-orchestrator": format!("Kubernetes:{}", s.cluster.kubernetes_version)},
            "properties": {
                "provisioningState": "Succeeded",
                "orchestrationMode": "Uniform",
                "upgradePolicy": {"mode": "Manual"},
                "uniqueId": stable_uuid(&format!("{rg}/{vmss}")),
                "singlePlacementGroup": false,
                "overprovision": false,
                "doNotRunExtensionsOnOverprovisionedVMs": false,
                "platformFaultDomainCount": 1,
                "virtualMachineProfile": nodes.first().map(|n| self.vmss_model(rg, vmss, n)),
                "timeCreated": crate::time::rfc3339_millis(crate::time::days_ago(s.cluster.age_days)),
            },
        })
    }

    /// The scale set's model (`properties.virtualMachineProfile`): what each instance is
    /// built from. `osProfile.computerNamePrefix` is the node names' prefix (a node's name is
    /// the prefix and its instance number in six digits), so clients map node names to
    /// instances with it; the rest is the instance's own profile without per-VM fields.
    pub(super) fn vmss_model(&self, rg: &str, vmss: &str, n: &NodeSpec) -> Value {
        let vm = self.vmss_vm_json(rg, vmss, n);
        let p = &vm["properties"];
        let mut os = p["osProfile"].clone();
        if let Some(o) = os.as_object_mut() {
            o.remove("computerName");
            o.remove("requireGuestProvisionSignal");
            o.insert(
                "computerNamePrefix".into(),
                json!(model::vmss_name(&self.shared.scenario, n)),
            );
        }
        let mut storage = p["storageProfile"].clone();
        if let Some(d) = storage["osDisk"].as_object_mut() {
            d.remove("name");
        }
        let nics = &p["networkProfileConfiguration"]["networkInterfaceConfigurations"];
        json!({
            "osProfile": os,
            "storageProfile": storage,
            "networkProfile": {"networkInterfaceConfigurations": nics},
            "extensionProfile": {"extensions": []},
            "priority": "Regular",
            "securityProfile": {"encryptionAtHost": false},
        })
    }

    pub(super) fn vmss_vm_json(&self, rg: &str, vmss: &str, n: &NodeSpec) -> Value {
        let s = &self.shared.scenario;
        let linux = n.is_linux();
        let base = format!(
            "/subscriptions/{}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachineScaleSets/{vmss}/virtualMachines/{}",
            self.sub(),
            n.instance
        );
        let (gallery, image) = if linux {
            ("AKSUbuntu", "2204gen2containerd")
        } else {
            ("AKSWindows", "windows-2022-containerd")
        };
        let image_version = n.node_image_version.rsplit('-').next().unwrap_or_default().to_string();
        let os_profile = if linux {
            json!({
                "computerName": n.name,
                "adminUsername": s.cluster.admin_username,
                "linuxConfiguration": {
                    "disablePasswordAuthentication": true,
                    "ssh": {"publicKeys": ssh_public_key(&self.shared.state_dir).into_iter().map(|k| json!({
                        "path": format!("/home/{}/.ssh/authorized_keys", s.cluster.admin_username),
                        "keyData": k,
                    })).collect::<Vec<_>>()},
                    "provisionVMAgent": true,
                    "enableVMAgentPlatformUpdates": false,
                },
                "secrets": [],
                "allowExtensionOperations": true,
                "requireGuestProvisionSignal": true,
            })
        } else {
            json!({
                "computerName": n.name,
                "adminUsername": s.cluster.admin_username,
                "windowsConfiguration": {"provisionVMAgent": true, "enableAutomaticUpdates": false, "enableVMAgentPlatformUpdates": false},
                "secrets": [],
                "allowExtensionOperations": true,
                "requireGuestProvisionSignal": true,
            })
        };
        let mut v = json!({
            "id": base,
            "name": format!("{vmss}_{}", n.instance),
            "type": "Microsoft.Compute/virtualMachineScaleSets/virtualMachines",
            "location": s.cluster.location,
            "instanceId": n.instance.to_string(),
            "sku": {"name": n.vm_size, "tier": "Standard"},
            "tags": {"aks-managed-poolName": n.pool},
            "properties": {
                "latestModelApplied": true,
                "modelDefinitionApplied": "VirtualMachineScaleSet",
                "vmId": stable_uuid(&format!("{}/vmid", n.name)),
                "hardwareProfile": {"vmSize": n.vm_size},
                "storageProfile": {
                    "imageReference": {
                        "id": format!("/subscriptions/109a5e88-712a-48ae-9078-9ca8b3c81345/resourceGroups/AKS-{gallery}/providers/Microsoft.Compute/galleries/{gallery}/images/{image}/versions/{image_version}"),
                    },
                    "osDisk": {
                        "osType": if linux { "Linux" } else { "Windows" },
                        "name": format!("{vmss}_{}_OsDisk_1_{}", n.instance, &stable_hex(&n.name)[..32]),
                        "createOption": "FromImage",
                        "caching": "ReadOnly",
                        "managedDisk": {"storageAccountType": "Premium_LRS"},
                        "diskSizeGB": 128,
                    },
                    "dataDisks": [],
                },
                "osProfile": os_profile,
                "networkProfile": {
                    "networkInterfaces": [{
                        "id": format!("{base}/networkInterfaces/{vmss}"),
                        "properties": {"primary": true},
                    }]
                },
                "networkProfileConfiguration": {
                    "networkInterfaceConfigurations": [{
                        "name": vmss,
                        "properties": {
                            "primary": true,
                            "enableAcceleratedNetworking": linux,
                            "enableIPForwarding": true,
                            "ipConfigurations": [{
                                "name": "ipconfig1",
                                "properties": {
                                    "primary": true,
                                    "privateIPAddressVersion": "IPv4",
                                    "subnet": {"id": format!("/subscriptions/{}/resourceGroups/{rg}/providers/Microsoft.Network/virtualNetworks/aks-vnet-{}/subnets/aks-subnet", self.sub(), &stable_hex(rg)[..8])},
                                }
                            }],
                        }
                    }]
                },
                "provisioningState": "Succeeded",
                "timeCreated": crate::time::rfc3339_millis(crate::time::days_ago(s.cluster.age_days)),
            },
        });
        if let Some(z) = &n.zone {
            v["zones"] = json!([z]);
        }
        let expand = self
            .query
            .iter()
            .any(|(k, val)| k.eq_ignore_ascii_case("$expand") && val.eq_ignore_ascii_case("instanceView"));
        if expand {
            v["properties"]["instanceView"] = super::run_command::instance_view(self.shared, &n.name, &n.os_image);
        }
        v
    }
}
