//! Managed clusters (the scenario's, and empty stopped ones that make listing page),
//! their agent pools, upgrade profiles, machines, maintenance configurations and
//! credentials; the subscription and its resource groups.

use super::routes::{Cluster, Ctx};
use super::{arm_error, ok};
use crate::ids::{stable_hex, stable_uuid};
use crate::model::{self, NodeSpec};
use crate::scenario::{OsType, SUBSCRIPTION_NAME};
use crate::Shared;
use axum::http::StatusCode;
use axum::response::Response;
use base64::Engine;
use serde_json::{json, Value};
use std::path::Path;

impl<'a> Ctx<'a> {
    pub(super) fn clusters(&self) -> Vec<Cluster> {
        std::iter::once(Cluster::Main)
            .chain((0..self.shared.scenario.extra_clusters).map(Cluster::Extra))
            .collect()
    }

    pub(super) fn cluster_name(&self, c: Cluster) -> String {
        match c {
            Cluster::Main => self.shared.scenario.cluster.name.clone(),
            Cluster::Extra(i) => format!("aks-extra-{:02}", i + 1),
        }
    }

    pub(super) fn cluster_rg(&self, _c: Cluster) -> &str {
        &self.shared.scenario.resource_group
    }

    pub(super) fn node_rg(&self, c: Cluster) -> String {
        match c {
            Cluster::Main => model::node_resource_group(&self.shared.scenario),
            Cluster::Extra(_) => format!(
                "MC_{}_{}_{}",
                self.cluster_rg(c),
                self.cluster_name(c),
                self.shared.scenario.cluster.location
            ),
        }
    }

    pub(super) fn resource_groups(&self) -> Vec<String> {
        let mut v = vec![self.shared.scenario.resource_group.clone()];
        v.extend(self.clusters().into_iter().map(|c| self.node_rg(c)));
        v
    }

    pub(super) fn rg_json(&self, rg: &str) -> Value {
        let mut v = json!({
            "id": format!("/subscriptions/{}/resourceGroups/{rg}", self.sub()),
            "name": rg,
            "type": "Microsoft.Resources/resourceGroups",
            "location": self.shared.scenario.cluster.location,
            "properties": {"provisioningState": "Succeeded"},
        });
        if let Some(c) = self.clusters().into_iter().find(|c| self.node_rg(*c) == rg) {
            v["managedBy"] = json!(self.cluster_id(c));
            v["tags"] =
                json!({"aks-managed-cluster-name": self.cluster_name(c), "aks-managed-cluster-rg": self.cluster_rg(c)});
        }
        v
    }

    pub(super) fn cluster_id(&self, c: Cluster) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.ContainerService/managedClusters/{}",
            self.sub(),
            self.cluster_rg(c),
            self.cluster_name(c)
        )
    }

    /// Indexes into `scenario.pools` of the cluster's pools; an extra cluster has the
    /// scenario's first (system) pool's shape, with no node running (it is stopped).
    pub(super) fn pools(&self, c: Cluster) -> Vec<usize> {
        match c {
            Cluster::Main => (0..self.shared.scenario.pools.len()).collect(),
            Cluster::Extra(_) => vec![0],
        }
    }

    pub(super) fn pool_nodes(&self, c: Cluster, pool: usize) -> Vec<&NodeSpec> {
        match c {
            Cluster::Main => self.shared.nodes.iter().filter(|n| n.pool_index == pool).collect(),
            Cluster::Extra(_) => vec![],
        }
    }

    pub(super) fn dns_prefix(&self, c: Cluster) -> String {
        let name: String = self.cluster_name(c).chars().take(10).collect();
        let rg: String = self.cluster_rg(c).chars().take(16).collect();
        let sub: String = self.sub().chars().take(6).collect();
        format!("{name}-{rg}-{sub}")
    }

    pub(super) fn list_clusters(&self, all: Vec<Cluster>) -> Response {
        let all: Vec<Value> = all.into_iter().map(|c| self.cluster_json(c)).collect();
        super::list_page(
            self.query,
            all,
            self.shared.scenario.arm_page_size,
            &self.shared.endpoints().arm_url,
            self.segs,
            self.api_version,
        )
    }

    pub(super) fn cluster_json(&self, c: Cluster) -> Value {
        let s = &self.shared.scenario;
        let name = self.cluster_name(c);
        let dns = self.dns_prefix(c);
        let hash = &stable_hex(&format!("{}/{}", self.cluster_rg(c), name))[..8];
        let loc = &s.cluster.location;
        let running = matches!(c, Cluster::Main);
        let pools: Vec<Value> = self
            .pools(c)
            .into_iter()
            .map(|p| {
                let mut v = self.agent_pool_json(c, p)["properties"].clone();
                if let Some(o) = v.as_object_mut() {
                    let mut m = serde_json::Map::new();
                    m.insert("name".into(), json!(s.pools[p].name));
                    m.extend(std::mem::take(o));
                    *o = m;
                }
                v
            })
            .collect();
        let has_windows = self.pools(c).iter().any(|p| s.pools[*p].os_type == OsType::Windows);
        let public_keys: Vec<Value> = ssh_public_key(&self.shared.state_dir)
            .into_iter()
            .map(|k| json!({"keyData": k}))
            .collect();
        let node_rg = self.node_rg(c);
        let mut props = json!({
            "provisioningState": "Succeeded",
            "powerState": {"code": if running { "Running" } else { "Stopped" }},
            "kubernetesVersion": s.cluster.kubernetes_version,
            "currentKubernetesVersion": s.cluster.kubernetes_version,
            "dnsPrefix": dns,
            "fqdn": format!("{dns}-{hash}.hcp.{loc}.azmk8s.io"),
            "azurePortalFQDN": format!("{dns}-{hash}.portal.hcp.{loc}.azmk8s.io"),
            "agentPoolProfiles": pools,
            "linuxProfile": {
                "adminUsername": s.cluster.admin_username,
                "ssh": {"publicKeys": public_keys},
            },
            "servicePrincipalProfile": {"clientId": "msi"},
            "addonProfiles": {
                "azureKeyvaultSecretsProvider": {"enabled": false, "config": null},
                "azurepolicy": {"enabled": false, "config": null},
            },
            "nodeResourceGroup": node_rg,
            "enableRBAC": true,
            "supportPlan": "KubernetesOfficial",
            "networkProfile": {
                "networkPlugin": "azure",
                "networkPluginMode": "overlay",
                "networkPolicy": "none",
                "networkDataplane": "azure",
                "loadBalancerSku": "standard",
                "loadBalancerProfile": {
                    "managedOutboundIPs": {"count": 1},
                    "effectiveOutboundIPs": [{
                        "id": format!("/subscriptions/{}/resourceGroups/{node_rg}/providers/Microsoft.Network/publicIPAddresses/{}", self.sub(), stable_uuid(&format!("{name}/outbound-ip")))
                    }],
                    "backendPoolType": "nodeIPConfiguration",
                },
                "podCidr": "10.244.0.0/16",
                "serviceCidr": "10.0.0.0/16",
                "dnsServiceIP": "10.0.0.10",
                "outboundType": "loadBalancer",
                "podCidrs": ["10.244.0.0/16"],
                "serviceCidrs": ["10.0.0.0/16"],
                "ipFamilies": ["IPv4"],
            },
            "maxAgentPools": 100,
            "identityProfile": {
                "kubeletidentity": {
                    "resourceId": format!("/subscriptions/{}/resourcegroups/{node_rg}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}-agentpool", self.sub()),
                    "clientId": stable_uuid(&format!("{name}/kubelet-client")),
                    "objectId": stable_uuid(&format!("{name}/kubelet-object")),
                }
            },
            "autoUpgradeProfile": {
                "upgradeChannel": "none",
                "nodeOSUpgradeChannel": s.cluster.node_os_upgrade_channel.as_str(),
            },
            "disableLocalAccounts": running && s.cluster.disable_local_accounts,
            "securityProfile": {},
            "storageProfile": {
                "diskCSIDriver": {"enabled": true, "version": "v1"},
                "fileCSIDriver": {"enabled": true},
                "snapshotController": {"enabled": true},
            },
            "oidcIssuerProfile": {"enabled": false},
            "workloadAutoScalerProfile": {},
            "resourceUID": stable_hex(&format!("{name}/uid"))[..24].to_string(),
        });
        if let Some(aad) = s.cluster.aad_profile.filter(|_| running) {
            props["aadProfile"] = json!({
                "managed": aad.managed,
                "enableAzureRBAC": aad.enable_azure_rbac,
                "adminGroupObjectIDs": [stable_uuid(&format!("{name}/admin-group"))],
                "tenantID": s.tenant_id,
            });
        }
        if has_windows {
            props["windowsProfile"] = json!({"adminUsername": s.cluster.admin_username, "enableCSIProxy": true});
        }
        json!({
            "id": self.cluster_id(c),
            "location": loc,
            "name": name,
            "type": "Microsoft.ContainerService/ManagedClusters",
            "tags": s.cluster.tags,
            "eTag": &stable_hex(&format!("{name}/etag"))[..8],
            "properties": props,
            "identity": {
                "type": "SystemAssigned",
                "principalId": stable_uuid(&format!("{name}/principal")),
                "tenantId": s.tenant_id,
            },
            "sku": {"name": "Base", "tier": "Free"},
        })
    }

    pub(super) fn agent_pool_json(&self, c: Cluster, p: usize) -> Value {
        let s = &self.shared.scenario;
        let spec = &s.pools[p];
        let linux = spec.os_type == OsType::Linux;
        let nodes = self.pool_nodes(c, p);
        let first = nodes.first();
        let os_sku = first
            .map(|n| n.os_sku.clone())
            .or_else(|| spec.os_sku.clone())
            .unwrap_or_else(|| if linux { "Ubuntu" } else { "Windows2022" }.into());
        let mut props = json!({
            "count": spec.count,
            "vmSize": spec.vm_size,
            "osDiskSizeGB": 128,
            "osDiskType": "Managed",
            "kubeletDiskType": "OS",
            "maxPods": crate::resources::max_pods(!linux),
            "type": "VirtualMachineScaleSets",
            "enableAutoScaling": false,
            "scaleDownMode": "Delete",
            "provisioningState": if self.shared.arm_state.running(&spec.name) && matches!(c, Cluster::Main) {
                "UpgradingNodeImageVersion"
            } else {
                "Succeeded"
            },
            "powerState": {"code": if matches!(c, Cluster::Main) { "Running" } else { "Stopped" }},
            "orchestratorVersion": s.cluster.kubernetes_version,
            "currentOrchestratorVersion": s.cluster.kubernetes_version,
            "enableNodePublicIP": false,
            "mode": spec.mode,
            "osType": if linux { "Linux" } else { "Windows" },
            "osSKU": os_sku,
            "nodeImageVersion": self.pool_image(c, p),
            "upgradeSettings": {"maxSurge": "10%", "maxUnavailable": "0"},
            "enableFIPS": false,
            "securityProfile": {"sshAccess": spec.ssh_access, "enableVTPM": false, "enableSecureBoot": false},
            "eTag": &stable_hex(&format!("{}/{}/etag", self.cluster_name(c), spec.name))[..8],
        });
        if !spec.zones.is_empty() {
            props["availabilityZones"] = json!(spec.zones);
        }
        if spec.mode == "System" {
            props["nodeTaints"] = json!([]);
        }
        json!({
            "id": format!("{}/agentPools/{}", self.cluster_id(c), spec.name),
            "name": spec.name,
            "type": "Microsoft.ContainerService/managedClusters/agentPools",
            "properties": props,
        })
    }

    /// The node image a pool runs now (after any `upgradeNodeImageVersion`).
    pub(super) fn pool_image(&self, c: Cluster, p: usize) -> String {
        let spec = &self.shared.scenario.pools[p];
        let first = self.pool_nodes(c, p).first().copied();
        match c {
            Cluster::Main => self
                .shared
                .arm_state
                .image(&spec.name)
                .unwrap_or_else(|| pool_node_image(spec, first)),
            Cluster::Extra(_) => pool_node_image(spec, first),
        }
    }

    /// `managedClusters/{c}/upgradeProfiles/default`: the control plane's and every pool's
    /// Kubernetes version and the versions they can go to.
    pub(super) fn cluster_upgrade_profile(&self, c: Cluster) -> Value {
        let s = &self.shared.scenario;
        let v = &s.cluster.kubernetes_version;
        let upgrades: Vec<Value> = upgrade_targets(v)
            .into_iter()
            .map(|u| json!({"kubernetesVersion": u, "isPreview": null}))
            .collect();
        let pools: Vec<Value> = self
            .pools(c)
            .into_iter()
            .map(|p| {
                let spec = &s.pools[p];
                json!({"name": spec.name, "kubernetesVersion": v,
                       "osType": if spec.os_type == OsType::Linux { "Linux" } else { "Windows" },
                       "upgrades": upgrades})
            })
            .collect();
        json!({
            "id": format!("{}/upgradeprofiles/default", self.cluster_id(c)),
            "name": "default",
            "type": "Microsoft.ContainerService/managedClusters/upgradeprofiles",
            "properties": {
                "controlPlaneProfile": {"kubernetesVersion": v, "name": null, "osType": "Linux", "upgrades": upgrades},
                "agentPoolProfiles": pools,
            },
        })
    }

    /// `managedClusters/{c}/availableAgentPoolVersions`: the cluster's version (default) and
    /// the supported ones around it.
    pub(super) fn available_versions(&self, c: Cluster) -> Value {
        let v = &self.shared.scenario.cluster.kubernetes_version;
        let mut versions: Vec<Value> = previous_minor(v)
            .into_iter()
            .map(|p| json!({"kubernetesVersion": p, "isPreview": null}))
            .collect();
        versions.push(json!({"default": true, "kubernetesVersion": v, "isPreview": null}));
        versions.extend(
            upgrade_targets(v)
                .into_iter()
                .map(|u| json!({"kubernetesVersion": u, "isPreview": null})),
        );
        json!({
            "id": format!("{}/availableagentpoolversions", self.cluster_id(c)),
            "name": "default",
            "type": "Microsoft.ContainerService/managedClusters/availableAgentpoolVersions",
            "properties": {"agentPoolVersions": versions},
        })
    }

    pub(super) fn upgrade_profile_json(&self, c: Cluster, p: usize) -> Value {
        let s = &self.shared.scenario;
        let spec = &s.pools[p];
        let first = self.pool_nodes(c, p).first().copied();
        let latest = spec
            .latest_node_image_version
            .clone()
            .unwrap_or_else(|| pool_node_image(spec, first));
        json!({
            "id": format!("{}/agentPools/{}/upgradeProfiles/default", self.cluster_id(c), spec.name),
            "name": "default",
            "type": "Microsoft.ContainerService/managedClusters/agentPools/upgradeProfiles",
            "properties": {
                "kubernetesVersion": s.cluster.kubernetes_version,
                "osType": if spec.os_type == OsType::Linux { "Linux" } else { "Windows" },
                "latestNodeImageVersion": latest,
                "upgrades": next_minor(&s.cluster.kubernetes_version).map(|v| vec![json!({"kubernetesVersion": v})]).unwrap_or_default(),
            },
        })
    }

    pub(super) fn vm_resource_id(&self, c: Cluster, n: &NodeSpec) -> String {
        format!(
            "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Compute/virtualMachineScaleSets/{}/virtualMachines/{}",
            self.sub(),
            self.node_rg(c),
            model::vmss_name(&self.shared.scenario, n),
            n.instance
        )
    }

    pub(super) fn machine_json(&self, c: Cluster, n: &NodeSpec) -> Value {
        let mut v = json!({
            "id": format!("{}/agentPools/{}/machines/{}", self.cluster_id(c), n.pool, n.name),
            "name": n.name,
            "type": "Microsoft.ContainerService/managedClusters/agentPools/machines",
            "properties": {
                "network": {"ipAddresses": [{"family": "IPv4", "ip": n.ip.to_string()}]},
                "resourceId": self.vm_resource_id(c, n),
            },
        });
        if let Some(z) = &n.zone {
            v["zones"] = json!([z]);
        }
        v
    }

    pub(super) fn maintenance_configs(&self, c: Cluster) -> Vec<Value> {
        if !matches!(c, Cluster::Main) {
            return vec![];
        }
        if let Some(configs) = &self.shared.scenario.cluster.maintenance_configurations {
            return configs
                .iter()
                .map(|m| {
                    json!({
                        "id": format!("{}/maintenanceConfigurations/{}", self.cluster_id(c), m.name),
                        "name": m.name,
                        "type": "Microsoft.ContainerService/managedClusters/maintenanceConfigurations",
                        "properties": {"maintenanceWindow": m.maintenance_window},
                    })
                })
                .collect();
        }
        let start = crate::time::days_ago(self.shared.scenario.cluster.age_days)
            .strftime("%Y-%m-%d")
            .to_string();
        vec![json!({
            "id": format!("{}/maintenanceConfigurations/aksManagedNodeOSUpgradeSchedule", self.cluster_id(c)),
            "name": "aksManagedNodeOSUpgradeSchedule",
            "type": "Microsoft.ContainerService/managedClusters/maintenanceConfigurations",
            "properties": {
                "maintenanceWindow": {
                    "schedule": {"weekly": {"intervalWeeks": 1, "dayOfWeek": "Sunday"}},
                    "durationHours": 4,
                    "utcOffset": "+00:00",
                    "startDate": start,
                    "startTime": "02:00",
                    "notAllowedDates": [],
                }
            },
        })]
    }

    pub(super) fn credentials(&self, c: Cluster, admin: bool) -> Response {
        if !matches!(c, Cluster::Main) {
            return arm_error(
                StatusCode::BAD_REQUEST,
                "OperationNotAllowed",
                format!(
                    "Managed cluster '{}' is stopped: start it with `az aks start` before getting its credentials.",
                    self.cluster_name(c)
                ),
            );
        }
        let s = &self.shared.scenario;
        if admin && s.cluster.disable_local_accounts {
            return arm_error(
                StatusCode::BAD_REQUEST,
                "BadRequest",
                "Getting static credential is not allowed because this cluster is set to disable local accounts.",
            );
        }
        let format = self
            .query
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("format"))
            .map(|(_, v)| v.as_str());
        let kubeconfig = match format {
            Some(f) if !f.eq_ignore_ascii_case("exec") && !f.eq_ignore_ascii_case("azure") => {
                return arm_error(
                    StatusCode::BAD_REQUEST,
                    "InvalidParameter",
                    format!("The value '{f}' of parameter 'format' is invalid: it must be 'azure' or 'exec'."),
                )
            }
            // `format` applies to Entra ID clusters only; the admin credential is always static.
            _ if admin || !s.is_entra() => crate::state_dir::kubeconfig(self.shared, admin),
            // Kubernetes ≥ 1.24: exec (kubelogin) is the default.
            Some(f) if f.eq_ignore_ascii_case("azure") => crate::state_dir::entra_kubeconfig(self.shared, false),
            _ => crate::state_dir::entra_kubeconfig(self.shared, true),
        };
        let value = base64::engine::general_purpose::STANDARD.encode(kubeconfig);
        ok(json!({"kubeconfigs": [{"name": if admin { "clusterAdmin" } else { "clusterUser" }, "value": value}]}))
    }
}

pub(super) fn subscription_json(s: &Shared) -> Value {
    json!({
        "id": format!("/subscriptions/{}", s.scenario.subscription_id),
        "authorizationSource": "RoleBased",
        "managedByTenants": [],
        "subscriptionId": s.scenario.subscription_id,
        "tenantId": s.scenario.tenant_id,
        "displayName": SUBSCRIPTION_NAME,
        "state": "Enabled",
        "subscriptionPolicies": {"locationPlacementId": "Public_2014-09-01", "quotaId": "PayAsYouGo_2014-09-01", "spendingLimit": "Off"},
    })
}

pub(super) fn list_subscriptions(s: &Shared) -> Response {
    ok(json!({"value": [subscription_json(s)], "count": {"type": "Total", "value": 1}}))
}

/// The node image a pool runs: from its nodes (which follow the scenario), else the spec.
fn pool_node_image(spec: &crate::scenario::PoolSpec, first: Option<&NodeSpec>) -> String {
    first
        .map(|n| n.node_image_version.clone())
        .or_else(|| spec.node_image_version.clone())
        .unwrap_or_else(|| "AKSUbuntu-2204gen2containerd-202501.12.0".into())
}

/// The versions a cluster can upgrade to: the newest patches of its minor and the next one.
fn upgrade_targets(version: &str) -> Vec<String> {
    let mut it = version.split('.');
    let (Some(Ok(major)), Some(Ok(minor)), Some(Ok(patch))) = (
        it.next().map(str::parse::<u32>),
        it.next().map(str::parse::<u32>),
        it.next().map(str::parse::<u32>),
    ) else {
        return vec![];
    };
    vec![
        format!("{major}.{minor}.{}", patch + 2),
        format!("{major}.{}.2", minor + 1),
        format!("{major}.{}.5", minor + 1),
    ]
}

fn previous_minor(version: &str) -> Option<String> {
    let mut it = version.split('.');
    let major: u32 = it.next()?.parse().ok()?;
    let minor: u32 = it.next()?.parse().ok()?;
    Some(format!("{major}.{}.9", minor.checked_sub(1)?))
}

fn next_minor(version: &str) -> Option<String> {
    let mut it = version.split('.');
    let major: u32 = it.next()?.parse().ok()?;
    let minor: u32 = it.next()?.parse().ok()?;
    Some(format!("{major}.{}.0", minor + 1))
}

pub(super) fn ssh_public_key(state_dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(state_dir.join("ssh").join("id_ed25519.pub")).ok()?;
    let key = text.trim();
    (!key.is_empty()).then(|| key.to_string())
}
