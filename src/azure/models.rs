//! The parts of ARM's AKS payloads that aks-patch reads. Every field is optional or
//! defaulted: ARM adds fields over time and omits empty ones.

use serde::{Deserialize, Serialize};

/// `Microsoft.ContainerService/managedClusters`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManagedCluster {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub location: String,
    #[serde(default)]
    pub properties: ManagedClusterProperties,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ManagedClusterProperties {
    pub provisioning_state: Option<String>,
    pub power_state: Option<PowerState>,
    pub kubernetes_version: Option<String>,
    pub current_kubernetes_version: Option<String>,
    pub dns_prefix: Option<String>,
    pub fqdn: Option<String>,
    pub private_fqdn: Option<String>,
    pub node_resource_group: Option<String>,
    pub linux_profile: Option<LinuxProfile>,
    pub auto_upgrade_profile: Option<AutoUpgradeProfile>,
    #[serde(default)]
    pub agent_pool_profiles: Vec<AgentPoolProfile>,
    /// Local accounts off: `listClusterAdminCredential` is refused.
    pub disable_local_accounts: Option<bool>,
    /// Present for Entra ID (AAD) integrated clusters.
    pub aad_profile: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PowerState {
    pub code: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LinuxProfile {
    #[serde(default)]
    pub admin_username: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AutoUpgradeProfile {
    pub upgrade_channel: Option<String>,
    #[serde(rename = "nodeOSUpgradeChannel")]
    pub node_os_upgrade_channel: Option<String>,
}

/// A node pool, as `agentPoolProfiles[]` in the cluster and `properties` of `agentPools`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentPoolProfile {
    /// Set in `agentPoolProfiles[]`; for `agentPools` items the name is one level up.
    #[serde(default)]
    pub name: String,
    pub count: Option<u32>,
    pub vm_size: Option<String>,
    /// `Linux` or `Windows`.
    pub os_type: Option<String>,
    /// `Ubuntu`, `AzureLinux`, `Windows2022`, ...
    #[serde(rename = "osSKU")]
    pub os_sku: Option<String>,
    /// `System` or `User`.
    pub mode: Option<String>,
    pub node_image_version: Option<String>,
    pub orchestrator_version: Option<String>,
    pub current_orchestrator_version: Option<String>,
    pub provisioning_state: Option<String>,
    pub power_state: Option<PowerState>,
    #[serde(default)]
    pub availability_zones: Vec<String>,
    pub upgrade_settings: Option<serde_json::Value>,
    pub security_profile: Option<AgentPoolSecurityProfile>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentPoolSecurityProfile {
    /// `LocalUser` (default) or `Disabled`.
    pub ssh_access: Option<String>,
}

/// An item of `GET {cluster}/agentPools`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentPool {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub properties: AgentPoolProfile,
}

/// `GET {cluster}/agentPools/{pool}/upgradeProfiles/default`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentPoolUpgradeProfile {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub properties: AgentPoolUpgradeProfileProperties,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentPoolUpgradeProfileProperties {
    pub kubernetes_version: Option<String>,
    pub os_type: Option<String>,
    /// The newest node image for this pool.
    pub latest_node_image_version: Option<String>,
}

/// An item of `GET {cluster}/agentPools/{pool}/machines`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Machine {
    #[serde(default)]
    pub id: String,
    /// The node name.
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub zones: Vec<String>,
    #[serde(default)]
    pub properties: MachineProperties,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MachineProperties {
    #[serde(default)]
    pub network: MachineNetwork,
    /// The VMSS instance: `/subscriptions/…/virtualMachineScaleSets/{vmss}/virtualMachines/{id}`.
    pub resource_id: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MachineNetwork {
    #[serde(default)]
    pub ip_addresses: Vec<MachineIp>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MachineIp {
    pub family: Option<String>,
    #[serde(default)]
    pub ip: String,
}

/// `GET {cluster}/maintenanceConfigurations[/{name}]`. The window stays JSON: its
/// schedule has several shapes (daily, weekly, absoluteMonthly, relativeMonthly).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MaintenanceConfiguration {
    #[serde(default)]
    pub id: String,
    /// `aksManagedNodeOSUpgradeSchedule`, `aksManagedAutoUpgradeSchedule`, `default`.
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub properties: MaintenanceConfigurationProperties,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MaintenanceConfigurationProperties {
    pub maintenance_window: Option<serde_json::Value>,
}

/// `{"value": [...], "nextLink": "..."}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Page<T> {
    #[serde(default = "Vec::new")]
    pub value: Vec<T>,
    pub next_link: Option<String>,
}

/// An item of `GET /subscriptions`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    #[serde(default)]
    pub subscription_id: String,
    #[serde(default)]
    pub display_name: String,
    pub tenant_id: Option<String>,
    pub state: Option<String>,
}

impl ManagedCluster {
    /// `autoUpgradeProfile.nodeOSUpgradeChannel` (`None`, `Unmanaged`, `NodeImage`, `SecurityPatch`).
    pub fn node_os_upgrade_channel(&self) -> Option<&str> {
        self.properties
            .auto_upgrade_profile
            .as_ref()
            .and_then(|p| p.node_os_upgrade_channel.as_deref())
    }

    /// AKS re-images the nodes itself (channel `NodeImage` or `SecurityPatch`): in-place
    /// apt patching fights it.
    pub fn reimaged_by_aks(&self) -> bool {
        matches!(self.node_os_upgrade_channel(), Some("NodeImage" | "SecurityPatch"))
    }

    /// `linuxProfile.adminUsername`, the SSH user of the nodes.
    pub fn admin_username(&self) -> Option<&str> {
        self.properties
            .linux_profile
            .as_ref()
            .map(|p| p.admin_username.as_str())
            .filter(|u| !u.is_empty())
    }

    /// `aadProfile.managed`: AKS-managed Entra ID integration.
    pub fn entra_managed(&self) -> bool {
        self.aad_flag("managed")
    }

    /// `aadProfile.enableAzureRBAC`: Azure RBAC for Kubernetes authorization.
    pub fn azure_rbac(&self) -> bool {
        self.aad_flag("enableAzureRBAC")
    }

    /// `disableLocalAccounts`: no static (admin) credentials.
    pub fn local_accounts_disabled(&self) -> bool {
        self.properties.disable_local_accounts == Some(true)
    }

    fn aad_flag(&self, name: &str) -> bool {
        self.properties
            .aad_profile
            .as_ref()
            .and_then(|a| a.get(name))
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false)
    }

    pub fn agent_pools(&self) -> &[AgentPoolProfile] {
        &self.properties.agent_pool_profiles
    }
}

impl AgentPoolProfile {
    pub fn is_linux(&self) -> bool {
        self.os_type.as_deref().is_none_or(|t| t.eq_ignore_ascii_case("Linux"))
    }

    pub fn is_windows(&self) -> bool {
        self.os_type
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case("Windows"))
    }

    /// `securityProfile.sshAccess` is `Disabled`: SSH into these nodes is impossible.
    pub fn ssh_disabled(&self) -> bool {
        self.security_profile
            .as_ref()
            .and_then(|s| s.ssh_access.as_deref())
            .is_some_and(|a| a.eq_ignore_ascii_case("Disabled"))
    }
}

impl AgentPool {
    /// The pool as an `agentPoolProfiles[]` entry (with its name filled in).
    pub fn into_profile(self) -> AgentPoolProfile {
        let mut p = self.properties;
        if p.name.is_empty() {
            p.name = self.name;
        }
        p
    }
}

impl Machine {
    /// The first IPv4 address (the node's InternalIP).
    pub fn ipv4(&self) -> Option<&str> {
        self.properties
            .network
            .ip_addresses
            .iter()
            .find(|a| a.family.as_deref().is_none_or(|f| f.eq_ignore_ascii_case("IPv4")))
            .map(|a| a.ip.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Body of `ManagedClustersGet.json` (Azure/azure-rest-api-specs examples, MIT).
    const MANAGED_CLUSTERS_GET: &str = r#"{"name":"clustername1","type":"Microsoft.ContainerService/managedClusters","eTag":"beywbwei","id":"/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg1/providers/Microsoft.ContainerService/managedClusters/clustername1","location":"location1","properties":{"agentPoolProfiles":[{"name":"nodepool1","availabilityZones":["1","2","3"],"count":3,"currentOrchestratorVersion":"1.9.6","eTag":"nvewbvoi","maxPods":110,"nodeImageVersion":"AKSUbuntu:1604:2020.03.11","orchestratorVersion":"1.9.6","osType":"Linux","provisioningState":"Succeeded","upgradeSettings":{"maxSurge":"33%"},"vmSize":"Standard_DS1_v2"}],"azurePortalFQDN":"dnsprefix1-abcd1234.portal.hcp.eastus.azmk8s.io","currentKubernetesVersion":"1.9.6","diskEncryptionSetID":"/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg1/providers/Microsoft.Compute/diskEncryptionSets/des","dnsPrefix":"dnsprefix1","enableRBAC":false,"fqdn":"dnsprefix1-abcd1234.hcp.eastus.azmk8s.io","kubernetesVersion":"1.9.6","linuxProfile":{"adminUsername":"azureuser","ssh":{"publicKeys":[{"keyData":"keydata"}]}},"maxAgentPools":1,"networkProfile":{"dnsServiceIP":"10.0.0.10","ipFamilies":["IPv4"],"loadBalancerProfile":{"allocatedOutboundPorts":2000,"effectiveOutboundIPs":[{"id":"/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/MC_rg1/providers/Microsoft.Network/publicIPAddresses/mgdoutboundip1"},{"id":"/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/MC_rg1/providers/Microsoft.Network/publicIPAddresses/mgdoutboundip2"}],"idleTimeoutInMinutes":10,"outboundIPs":{"publicIPs":[{"id":"/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg1/providers/Microsoft.Network/publicIPAddresses/customeroutboundip1"},{"id":"/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg1/providers/Microsoft.Network/publicIPAddresses/customeroutboundip2"}]}},"loadBalancerSku":"standard","networkPlugin":"kubenet","outboundType":"loadBalancer","podCidr":"10.244.0.0/16","podCidrs":["10.244.0.0/16"],"serviceCidr":"10.0.0.0/16","serviceCidrs":["10.0.0.0/16"]},"nodeResourceGroup":"MC_rg1_clustername1_location1","provisioningState":"Succeeded","servicePrincipalProfile":{"clientId":"clientid"},"upgradeSettings":{"overrideSettings":{"forceUpgrade":true,"until":"2022-11-01T13:00:00Z"}}},"tags":{"archv2":"","tier":"production"}}"#;
    /// Body of `AgentPoolsList.json` (Azure/azure-rest-api-specs examples, MIT).
    const AGENT_POOLS_LIST: &str = r#"{"value":[{"name":"agentpool1","id":"/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg1/providers/Microsoft.ContainerService/managedClusters/clustername1/agentPools/agentpool1","properties":{"count":3,"currentOrchestratorVersion":"1.9.6","eTag":"ewnfuib","maxPods":110,"nodeImageVersion":"AKSUbuntu:1604:2020.03.11","orchestratorVersion":"1.9.6","osType":"Linux","provisioningState":"Succeeded","vmSize":"Standard_DS1_v2"}}]}"#;
    /// Body of `AgentPoolsGetUpgradeProfile.json` (Azure/azure-rest-api-specs examples, MIT).
    const AGENT_POOLS_GET_UPGRADE_PROFILE: &str = r#"{"name":"default","type":"Microsoft.ContainerService/managedClusters/agentPools/upgradeProfiles","id":"/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg1/providers/Microsoft.ContainerService/managedClusters/clustername1/agentPools/agentpool1/upgradeprofiles/default","properties":{"kubernetesVersion":"1.12.8","latestNodeImageVersion":"AKSUbuntu:1604:2020.03.11","osType":"Linux","upgrades":[{"kubernetesVersion":"1.13.5"}]}}"#;
    /// Body of `MachineList.json` (Azure/azure-rest-api-specs examples, MIT).
    const MACHINE_LIST: &str = r#"{"nextLink":"http://xxxx.azure.com?encodedToken=c2tpcFRva2VuPTE","value":[{"name":"aks-nodepool1-25481572-vmss000000","type":"Microsoft.ContainerService/managedClusters/agentPools/machines","id":"/subscriptions/26fe00f8-9173-4872-9134-bb1d2e00343a/resourceGroups/dummyRG/providers/Microsoft.ContainerService/managedClusters/round/agentPools/nodepool1/machines/aks-nodepool1-25481572-vmss000000","properties":{"network":{"ipAddresses":[{"family":"IPv4","ip":"172.20.2.4"},{"family":"IPv4","ip":"10.0.0.1"}]},"resourceId":"/subscriptions/26fe00f8-9173-4872-9134-bb1d2e00343a/resourceGroups/dummyRG/providers/Microsoft.Compute/virtualMachineScaleSets/aks-nodepool1-25481572-vmss/virtualMachines/0"},"zones":["1"]}]}"#;
    /// Body of `MaintenanceConfigurationsList_MaintenanceWindow.json` (Azure/azure-rest-api-specs examples, MIT).
    const MAINTENANCE_CONFIGURATIONS_LIST: &str = r#"{"value":[{"name":"aksManagedNodeOSUpgradeSchedule","id":"/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg1/providers/Microsoft.ContainerService/managedClusters/clustername1/maintenanceConfigurations/aksManagedNodeOSUpgradeSchedule","properties":{"maintenanceWindow":{"durationHours":10,"schedule":{"daily":{"intervalDays":5}},"startDate":"2023-01-01","startTime":"13:30","utcOffset":"-07:00"}}},{"name":"aksManagedAutoUpgradeSchedule","id":"/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg1/providers/Microsoft.ContainerService/managedClusters/clustername1/maintenanceConfigurations/aksManagedAutoUpgradeSchedule","properties":{"maintenanceWindow":{"durationHours":5,"notAllowedDates":[{"end":"2023-02-25","start":"2023-02-18"},{"end":"2024-01-05","start":"2023-12-23"}],"schedule":{"absoluteMonthly":{"dayOfMonth":15,"intervalMonths":3}},"startDate":"2023-01-01","startTime":"08:30","utcOffset":"+00:00"}}}]}"#;

    fn fixture(body: &str) -> serde_json::Value {
        serde_json::from_str(body).unwrap()
    }

    #[test]
    fn reads_the_published_examples() {
        let c: ManagedCluster = serde_json::from_value(fixture(MANAGED_CLUSTERS_GET)).unwrap();
        assert_eq!(c.name, "clustername1");
        assert_eq!(
            c.properties.node_resource_group.as_deref(),
            Some("MC_rg1_clustername1_location1")
        );
        assert_eq!(c.admin_username(), Some("azureuser"));
        assert_eq!(
            c.agent_pools()[0].node_image_version.as_deref(),
            Some("AKSUbuntu:1604:2020.03.11")
        );
        assert!(c.agent_pools()[0].is_linux());
        assert_eq!(c.node_os_upgrade_channel(), None);

        let pools: Page<AgentPool> = serde_json::from_value(fixture(AGENT_POOLS_LIST)).unwrap();
        assert_eq!(pools.value[0].clone().into_profile().name, "agentpool1");
        let up: AgentPoolUpgradeProfile = serde_json::from_value(fixture(AGENT_POOLS_GET_UPGRADE_PROFILE)).unwrap();
        assert_eq!(
            up.properties.latest_node_image_version.as_deref(),
            Some("AKSUbuntu:1604:2020.03.11")
        );
        let machines: Page<Machine> = serde_json::from_value(fixture(MACHINE_LIST)).unwrap();
        assert_eq!(machines.value[0].ipv4(), Some("172.20.2.4"));
        assert!(machines.next_link.is_some());
        let mc: Page<MaintenanceConfiguration> =
            serde_json::from_value(fixture(MAINTENANCE_CONFIGURATIONS_LIST)).unwrap();
        assert_eq!(mc.value[0].name, "aksManagedNodeOSUpgradeSchedule");
    }
}
