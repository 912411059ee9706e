//! The scenario file: what cluster aks-sim emulates, its nodes, pending updates,
//! workloads, timings and faults. YAML (or JSON); unknown fields are errors, and every
//! error names the field it is about (`pools[1].osType: ...`).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

use crate::faults::Fault;
use crate::resources::{self, Quantity};

/// The built-in scenario: a cluster that looks like a real AKS cluster.
pub const DEFAULT_SCENARIO: &str = include_str!("../scenarios/default.yaml");

/// AKS's limit of nodes per cluster, which aks-sim serves up to.
pub const MAX_NODES: u32 = 5000;

/// Clusters per page in ARM list responses unless the scenario says otherwise
/// (`armPageSize`): ARM's own page size for managed clusters.
pub const ARM_PAGE_SIZE: usize = 100;

/// The display name of the emulated subscription.
pub const SUBSCRIPTION_NAME: &str = "aks-sim";

#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("cannot read scenario file {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid scenario {origin}: field `{field}`: {message}")]
    Invalid {
        origin: String,
        field: String,
        message: String,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Scenario {
    #[serde(default = "default_subscription")]
    pub subscription_id: String,
    #[serde(default = "default_tenant")]
    pub tenant_id: String,
    #[serde(default = "default_rg")]
    pub resource_group: String,
    pub cluster: ClusterSpec,
    #[serde(default)]
    pub timing: Timing,
    pub pools: Vec<PoolSpec>,
    /// Per-node overrides, keyed by node name (e.g. `aks-user-31415926-vmss000001`).
    #[serde(default)]
    pub nodes: BTreeMap<String, NodeOverride>,
    #[serde(default)]
    pub workloads: Vec<Workload>,
    /// A kured DaemonSet in kube-system, optionally holding its reboot lock.
    #[serde(default)]
    pub kured: Option<KuredSpec>,
    /// Faults active from the start (the same ones `aks-sim fault` sets at run time).
    #[serde(default)]
    pub faults: Vec<Fault>,
    /// Extra (empty) clusters in the same subscription, so that listing needs `nextLink` paging.
    #[serde(default)]
    pub extra_clusters: u32,
    /// Clusters per page of ARM list responses. ARM's own pages hold up to 100 managed
    /// clusters; a small number (e.g. 2) makes clients follow `nextLink`.
    #[serde(default = "default_arm_page_size")]
    pub arm_page_size: usize,
    /// TCP port sshd serves on every node address.
    #[serde(default = "default_ssh_port")]
    pub ssh_port: u16,
    /// A bastion (jump host) at `<node prefix>.254:<sshPort>` that may forward TCP to the
    /// nodes' SSH port only, as operators reach the nodes of a private cluster. Served when
    /// the cluster has a Linux node.
    #[serde(default = "default_bastion")]
    pub bastion: bool,
    /// Who the credentials authenticate as and what they may do (absent: both the user and
    /// the admin credential are `masterclient` in `system:masters`, as AKS local accounts).
    #[serde(default, skip_serializing_if = "Access::is_default")]
    pub access: Access,
}

/// The identities behind the kubeconfigs ARM hands out.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Access {
    /// The `listClusterUserCredential` kubeconfig's user: restricted to a ClusterRole.
    #[serde(default)]
    pub user: Option<UserAccess>,
    /// The subjects of the service principal's federated identity credentials (issuer: the
    /// cluster's; audience `api://AzureADTokenExchange`): the ServiceAccounts whose tokens
    /// the Entra endpoint takes as `client_assertion`. Empty: [`DEFAULT_FEDERATED_SUBJECT`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub federated_subjects: Vec<String>,
}

/// The federated credential's subject when the scenario names none: deploy/'s ServiceAccount.
pub const DEFAULT_FEDERATED_SUBJECT: &str = "system:serviceaccount:aks-patch:aks-patch";

impl Access {
    fn is_default(&self) -> bool {
        *self == Access::default()
    }

    /// The federated identity credentials' subjects in effect.
    pub fn federated_subjects(&self) -> Vec<String> {
        if self.federated_subjects.is_empty() {
            vec![DEFAULT_FEDERATED_SUBJECT.to_string()]
        } else {
            self.federated_subjects.clone()
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct UserAccess {
    /// What `kubectl auth whoami` shows, and 403 messages name.
    #[serde(default = "default_user_name")]
    pub username: String,
    /// Groups besides `system:authenticated`.
    #[serde(default)]
    pub groups: Vec<String>,
    /// The ClusterRole's name (in `kubectl auth can-i` reasons).
    #[serde(default = "default_user_role")]
    pub cluster_role: String,
    /// Its rules; requests outside them are 403 Forbidden.
    pub rules: Vec<crate::rbac::Rule>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ClusterSpec {
    pub name: String,
    #[serde(default = "default_location")]
    pub location: String,
    #[serde(default = "default_k8s_version")]
    pub kubernetes_version: String,
    #[serde(default = "default_channel", rename = "nodeOSUpgradeChannel")]
    pub node_os_upgrade_channel: UpgradeChannel,
    #[serde(default = "default_admin")]
    pub admin_username: String,
    /// Days since the cluster (and its nodes) were created; drives AGE.
    #[serde(default = "default_age_days")]
    pub age_days: u32,
    /// AKS-managed Entra ID integration (`properties.aadProfile`); absent: local accounts only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aad_profile: Option<AadProfile>,
    /// `properties.disableLocalAccounts`: `listClusterAdminCredential` is refused (needs
    /// `aadProfile.managed`, as ARM requires).
    #[serde(default)]
    pub disable_local_accounts: bool,
    /// The planned-maintenance configurations ARM serves (`None`: one weekly Sunday window,
    /// `aksManagedNodeOSUpgradeSchedule`; `[]`: none).
    #[serde(default)]
    pub maintenance_configurations: Option<Vec<MaintenanceConfigSpec>>,
    /// The managed cluster's Azure tags (ARM's `tags`, Resource Graph's `tags`).
    #[serde(default = "default_tags")]
    pub tags: BTreeMap<String, String>,
}

fn default_tags() -> BTreeMap<String, String> {
    BTreeMap::from([("environment".to_string(), "aks-sim".to_string())])
}

/// One `maintenanceConfigurations/{name}`: its `properties.maintenanceWindow`, served as given
/// (ARM's shape: `schedule`, `durationHours`, `startTime`, `utcOffset`, `startDate`,
/// `notAllowedDates`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MaintenanceConfigSpec {
    pub name: String,
    pub maintenance_window: serde_json::Value,
}

/// `properties.aadProfile` of an Entra ID cluster.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct AadProfile {
    /// AKS-managed Entra ID: the API server accepts Entra tokens for the AKS server app.
    #[serde(default)]
    pub managed: bool,
    /// Azure RBAC for Kubernetes authorization.
    #[serde(default, rename = "enableAzureRBAC")]
    pub enable_azure_rbac: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum UpgradeChannel {
    None,
    Unmanaged,
    NodeImage,
    SecurityPatch,
}

impl UpgradeChannel {
    pub fn as_str(&self) -> &'static str {
        match self {
            UpgradeChannel::None => "None",
            UpgradeChannel::Unmanaged => "Unmanaged",
            UpgradeChannel::NodeImage => "NodeImage",
            UpgradeChannel::SecurityPatch => "SecurityPatch",
        }
    }
}

/// Every delay the emulator plays, in seconds (fractions allowed).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct Timing {
    /// From the reboot command until the kubelet stops and the node turns NotReady.
    pub shutdown_seconds: f64,
    /// From the reboot command until the node is up again (new bootID, SSH answers).
    pub boot_seconds: f64,
    /// From boot until the node reports Ready.
    pub ready_seconds: f64,
    /// A fast reboot: the node is back before NotReady would be observed.
    pub fast_reboot: bool,
    /// How long a new pod takes to turn Ready.
    pub pod_start_seconds: f64,
    /// How long a deleted pod stays Terminating (capped by its grace period).
    pub termination_seconds: f64,
    /// How long `apt-get upgrade`/`dist-upgrade`/`install` runs, once the packages are
    /// downloaded.
    pub apt_seconds: f64,
    /// How long downloading the packages takes (`apt-get -d` alone, or as part of an upgrade
    /// when nothing was downloaded before).
    pub apt_download_seconds: f64,
    /// How long `apt-get update` runs.
    pub apt_update_seconds: f64,
    /// The least a VM scale set run command takes, from the request until its result
    /// (the agent's download and start; real ones take 20 s or more).
    pub run_command_seconds: f64,
    /// How often a running kubelet renews its Lease in `kube-node-lease`. Default (absent):
    /// 1 s, the kubelet's 10 s on the emulator's ten-times clock; 10 s on clusters of more
    /// than 1,000 nodes (see [`Scenario::liveness`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease_renew_seconds: Option<f64>,
    /// How long the node lifecycle controller waits for a Lease renewal before it marks the
    /// node Unknown. Default: 4 s (`--node-monitor-grace-period` 40 s, ten times as fast);
    /// 40 s on clusters of more than 1,000 nodes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_monitor_grace_seconds: Option<f64>,
    /// How often a running kubelet posts its node status when nothing changed, which moves
    /// the conditions' `lastHeartbeatTime`. Default: 30 s (`nodeStatusReportFrequency` 5 min,
    /// ten times as fast); 5 min on clusters of more than 1,000 nodes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_status_seconds: Option<f64>,
    /// How long the Entra access tokens for the AKS server application live (what the token
    /// endpoint's `expires_in` says and the API server enforces). Default 3599 s, as Entra's.
    pub token_lifetime_seconds: u64,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            shutdown_seconds: 0.3,
            boot_seconds: 2.0,
            ready_seconds: 0.5,
            fast_reboot: false,
            pod_start_seconds: 0.5,
            termination_seconds: 0.2,
            apt_seconds: 0.2,
            apt_download_seconds: 0.0,
            apt_update_seconds: 0.1,
            run_command_seconds: 1.0,
            // Absent: chosen by the cluster's size (Scenario::liveness).
            lease_renew_seconds: None,
            node_monitor_grace_seconds: None,
            node_status_seconds: None,
            token_lifetime_seconds: 3599,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OsType {
    Linux,
    Windows,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PoolSpec {
    pub name: String,
    #[serde(default = "default_mode")]
    pub mode: String,
    #[serde(default = "default_os_type")]
    pub os_type: OsType,
    /// Ubuntu, AzureLinux, Windows2022, ...
    #[serde(default, rename = "osSKU")]
    pub os_sku: Option<String>,
    pub count: u32,
    #[serde(default = "default_vm_size")]
    pub vm_size: String,
    #[serde(default)]
    pub node_image_version: Option<String>,
    #[serde(default)]
    pub latest_node_image_version: Option<String>,
    /// Running kernel of the pool's nodes (`uname -r`).
    #[serde(default)]
    pub kernel: Option<String>,
    #[serde(default)]
    pub os_image: Option<String>,
    #[serde(default)]
    pub zones: Vec<String>,
    /// `LocalUser` (default) or `Disabled`.
    #[serde(default = "default_ssh_access")]
    pub ssh_access: String,
    /// Pending package updates on every node of the pool.
    #[serde(default)]
    pub updates: Vec<PackageUpdate>,
    /// The random-looking number in the node names (`aks-<pool>-<id>-vmss00000N`).
    #[serde(default)]
    pub vmss_id: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PackageUpdate {
    pub name: String,
    pub from: String,
    pub to: String,
    /// e.g. `jammy-security` or `jammy-updates`.
    #[serde(default = "default_pocket")]
    pub pocket: String,
    /// The new kernel ABI this package pulls in (a *new* package `linux-image-<kernel>`):
    /// plain `apt-get upgrade` keeps it back; `--with-new-pkgs`, `dist-upgrade` and
    /// `install` install it, and it writes the reboot marker.
    #[serde(default)]
    pub kernel: Option<String>,
    /// Installing this package writes /var/run/reboot-required (libc6, systemd, ...).
    #[serde(default)]
    pub reboot_required: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct NodeOverride {
    /// Replace the pool's pending updates for this node.
    #[serde(default)]
    pub updates: Option<Vec<PackageUpdate>>,
    /// The reboot marker is already there, naming these packages.
    #[serde(default)]
    pub reboot_required: Vec<String>,
    /// Cordoned by hand before anything runs.
    #[serde(default)]
    pub cordoned: bool,
    /// Running kernel, overriding the pool's.
    #[serde(default)]
    pub kernel: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum WorkloadKind {
    Deployment,
    DaemonSet,
    /// A bare pod with no controller.
    Pod,
    /// A static pod the kubelet runs; the API shows its mirror pod.
    StaticPod,
    /// Ordinal pods `<name>-0..N-1`, created, replaced and rolled one at a time.
    StatefulSet,
    /// Pods that run for `runSeconds` and reach Succeeded; seeded as a finished run.
    Job,
    /// Jobs on `schedule` (UTC); seeded with its last, finished run.
    CronJob,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Workload {
    pub kind: WorkloadKind,
    pub name: String,
    #[serde(default = "default_namespace")]
    pub namespace: String,
    #[serde(default = "default_replicas")]
    pub replicas: u32,
    /// Only on nodes of this pool (nodeSelector agentpool=...). Pods and static pods
    /// land on the first node of the pool.
    #[serde(default)]
    pub pool: Option<String>,
    /// The pod mounts an emptyDir volume.
    #[serde(default)]
    pub empty_dir: bool,
    #[serde(default)]
    pub pdb: Option<PdbSpec>,
    #[serde(default = "default_grace")]
    pub termination_grace_seconds: i64,
    /// Container image, for realism.
    #[serde(default = "default_image")]
    pub image: String,
    /// CronJobs: the cron schedule (UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<String>,
    /// Jobs and CronJobs: how long each pod runs before it succeeds.
    #[serde(default = "default_run_seconds")]
    pub run_seconds: f64,
    /// What each pod's container requests (`resources.requests`), which the scheduler fits
    /// into the nodes' allocatable CPU and memory.
    #[serde(default, skip_serializing_if = "Requests::is_empty")]
    pub requests: Requests,
}

/// A container's `resources.requests`: Kubernetes quantities (`cpu: 500m`, `memory: 256Mi`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Requests {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<Quantity>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Quantity>,
}

impl Requests {
    pub fn is_empty(&self) -> bool {
        self.cpu.is_none() && self.memory.is_none()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct PdbSpec {
    #[serde(default)]
    pub min_available: Option<i32>,
    #[serde(default)]
    pub max_unavailable: Option<i32>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct KuredSpec {
    /// kured holds its lock for this node at start.
    #[serde(default)]
    pub lock_holder: Option<String>,
}

impl Scenario {
    /// Parse YAML or JSON text. `origin` names the file in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Scenario, ScenarioError> {
        let de = serde_yaml_ng::Deserializer::from_str(text);
        let scenario: Scenario = serde_path_to_error::deserialize(de).map_err(|e| {
            let field = e.path().to_string();
            let inner = e.into_inner();
            ScenarioError::Invalid {
                origin: origin.to_string(),
                field: if field == "." { "(top level)".into() } else { field },
                message: inner.to_string(),
            }
        })?;
        scenario.validate(origin)?;
        Ok(scenario)
    }

    pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Scenario::parse(&text, &path.display().to_string())
    }

    pub fn default_scenario() -> Scenario {
        Scenario::parse(DEFAULT_SCENARIO, "(built-in default)").expect("built-in scenario is valid")
    }

    /// Scale the Linux node count to `n` (notes dropped: see [`Scenario::scale_linux_nodes`]).
    pub fn with_linux_nodes(self, n: u32) -> Result<Scenario, ScenarioError> {
        self.scale_linux_nodes(n).map(|(s, _)| s)
    }

    /// Scale the Linux node count to `n` ≥ 1: with one Linux pool it takes them all;
    /// otherwise the first (system) pool gets half, 1 to 3, the last Linux pool the rest
    /// (5 nodes: 2 + 3), and the Linux pools between them none. What names a node or pool that no
    /// longer exists is dropped, with a note for each: per-node overrides and faults for
    /// nodes beyond the count, and bare or static pods pinned to a pool left empty.
    pub fn scale_linux_nodes(mut self, n: u32) -> Result<(Scenario, Vec<String>), ScenarioError> {
        if n == 0 {
            return Err(self.invalid(
                "--nodes",
                "--nodes",
                "at least 1 Linux node is needed (the system pool cannot be empty)".into(),
            ));
        }
        let linux: Vec<usize> = (0..self.pools.len())
            .filter(|i| self.pools[*i].os_type == OsType::Linux)
            .collect();
        let Some(&first) = linux.first() else {
            return Err(self.invalid("(built-in)", "pools", "no Linux pool to scale".into()));
        };
        let last = *linux.last().unwrap_or(&first);
        let mut notes = vec![];
        for &i in &linux {
            if i != first && i != last && self.pools[i].count > 0 {
                notes.push(format!(
                    "--nodes {n}: pool `{}` left empty: --nodes fills the first (system) and the last Linux pool",
                    self.pools[i].name
                ));
            }
            self.pools[i].count = 0;
        }
        if first == last {
            self.pools[first].count = n;
        } else {
            let system = if n == 1 { 1 } else { (n / 2).clamp(1, 3) };
            self.pools[first].count = system;
            self.pools[last].count = n - system;
        }
        // AKS's limit counts every node: the other pools shrink to make room.
        let mut over = self
            .pools
            .iter()
            .map(|p| p.count)
            .sum::<u32>()
            .saturating_sub(MAX_NODES);
        for p in self.pools.iter_mut().rev().filter(|p| p.os_type != OsType::Linux) {
            let cut = over.min(p.count);
            if cut > 0 {
                p.count -= cut;
                over -= cut;
                notes.push(format!(
                    "--nodes {n}: pool `{}` shrunk by {cut} node(s): an AKS cluster has at most {MAX_NODES} nodes",
                    p.name
                ));
            }
        }
        let names: std::collections::BTreeSet<String> = self.node_names().into_iter().collect();
        self.nodes.retain(|name, _| {
            let keep = names.contains(name);
            if !keep {
                notes.push(format!(
                    "--nodes {n}: dropped the overrides for node {name}, which a {n}-node cluster does not have"
                ));
            }
            keep
        });
        self.faults.retain(|f| match f.node() {
            Some(node) if !names.contains(node) => {
                notes.push(format!(
                    "--nodes {n}: dropped the {} fault for node {node}, which a {n}-node cluster does not have",
                    serde_json::to_value(f)
                        .ok()
                        .and_then(|v| v["fault"].as_str().map(str::to_string))
                        .unwrap_or_default()
                ));
                false
            }
            _ => true,
        });
        let empty: Vec<String> = self
            .pools
            .iter()
            .filter(|p| p.os_type == OsType::Linux && p.count == 0)
            .map(|p| p.name.clone())
            .collect();
        self.workloads.retain(|w| {
            let pinned_to_empty = matches!(w.kind, WorkloadKind::Pod | WorkloadKind::StaticPod)
                && w.pool.as_ref().is_some_and(|p| empty.contains(p));
            if pinned_to_empty {
                notes.push(format!(
                    "--nodes {n}: dropped {}/{} (a {:?} on pool `{}`, which has no node)",
                    w.namespace,
                    w.name,
                    w.kind,
                    w.pool.as_deref().unwrap_or_default()
                ));
            }
            !pinned_to_empty
        });
        self.validate("--nodes")?;
        Ok((self, notes))
    }

    fn invalid(&self, origin: &str, field: &str, message: String) -> ScenarioError {
        ScenarioError::Invalid {
            origin: origin.to_string(),
            field: field.to_string(),
            message,
        }
    }

    /// AKS-managed Entra ID (`cluster.aadProfile.managed`).
    pub fn is_entra(&self) -> bool {
        self.cluster.aad_profile.is_some_and(|a| a.managed)
    }

    pub(crate) fn validate(&self, origin: &str) -> Result<(), ScenarioError> {
        let err = |field: String, message: String| ScenarioError::Invalid {
            origin: origin.to_string(),
            field,
            message,
        };
        if self.cluster.name.is_empty() || !valid_name(&self.cluster.name) {
            return Err(err(
                "cluster.name".into(),
                format!(
                    "`{}` is not a valid cluster name (letters, digits, '-', '_')",
                    self.cluster.name
                ),
            ));
        }
        if !valid_name(&self.resource_group) {
            return Err(err(
                "resourceGroup".into(),
                format!("`{}` is not a valid resource group name", self.resource_group),
            ));
        }
        if self.pools.is_empty() {
            return Err(err("pools".into(), "at least one node pool is needed".into()));
        }
        let t = &self.timing;
        for (field, v) in [
            ("shutdownSeconds", t.shutdown_seconds),
            ("bootSeconds", t.boot_seconds),
            ("readySeconds", t.ready_seconds),
            ("podStartSeconds", t.pod_start_seconds),
            ("terminationSeconds", t.termination_seconds),
            ("aptSeconds", t.apt_seconds),
            ("aptUpdateSeconds", t.apt_update_seconds),
        ] {
            if !v.is_finite() || v < 0.0 {
                return Err(err(
                    format!("timing.{field}"),
                    format!("{v}: must be a number of seconds ≥ 0"),
                ));
            }
        }
        let (renew, grace, status) = self.liveness();
        for (field, v) in [
            ("leaseRenewSeconds", renew),
            ("nodeMonitorGraceSeconds", grace),
            ("nodeStatusSeconds", status),
        ] {
            if !v.is_finite() || v < 0.05 {
                return Err(err(
                    format!("timing.{field}"),
                    format!("{v}: must be at least 0.05 seconds"),
                ));
            }
        }
        if grace <= renew {
            return Err(err(
                "timing.nodeMonitorGraceSeconds".into(),
                format!(
                    "{grace}: must be longer than timing.leaseRenewSeconds ({renew}), or running nodes turn Unknown"
                ),
            ));
        }
        if t.token_lifetime_seconds < 10 {
            return Err(err(
                "timing.tokenLifetimeSeconds".into(),
                format!("{}: must be at least 10 seconds", t.token_lifetime_seconds),
            ));
        }
        if self.cluster.disable_local_accounts && !self.is_entra() {
            return Err(err(
                "cluster.disableLocalAccounts".into(),
                "needs cluster.aadProfile.managed: true (ARM refuses to disable local accounts on a cluster without AKS-managed Entra ID)".into(),
            ));
        }
        if self
            .cluster
            .aad_profile
            .is_some_and(|a| a.enable_azure_rbac && !a.managed)
        {
            return Err(err(
                "cluster.aadProfile.enableAzureRBAC".into(),
                "needs cluster.aadProfile.managed: true".into(),
            ));
        }
        let mut total = 0u32;
        let mut names = std::collections::BTreeSet::new();
        for (i, p) in self.pools.iter().enumerate() {
            if p.name.is_empty()
                || p.name.len() > 12
                || !p.name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
            {
                return Err(err(
                    format!("pools[{i}].name"),
                    format!("`{}`: a pool name is 1-12 lowercase letters or digits", p.name),
                ));
            }
            if !names.insert(p.name.clone()) {
                return Err(err(
                    format!("pools[{i}].name"),
                    format!("pool `{}` is named twice", p.name),
                ));
            }
            if p.os_type == OsType::Windows && p.name.len() > 6 {
                return Err(err(
                    format!("pools[{i}].name"),
                    format!("`{}`: a Windows pool name is at most 6 characters", p.name),
                ));
            }
            if p.mode != "System" && p.mode != "User" {
                return Err(err(
                    format!("pools[{i}].mode"),
                    format!("`{}`: expected System or User", p.mode),
                ));
            }
            if p.ssh_access != "LocalUser" && p.ssh_access != "Disabled" {
                return Err(err(
                    format!("pools[{i}].sshAccess"),
                    format!("`{}`: expected LocalUser or Disabled", p.ssh_access),
                ));
            }
            if resources::vm_size(&p.vm_size).is_none() {
                return Err(err(
                    format!("pools[{i}].vmSize"),
                    format!(
                        "`{}` is not a VM size aks-sim knows; it knows {}",
                        p.vm_size,
                        resources::known_vm_sizes().collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
            if let Some((j, z)) = p
                .zones
                .iter()
                .enumerate()
                .find(|(_, z)| !matches!(z.as_str(), "1" | "2" | "3"))
            {
                return Err(err(
                    format!("pools[{i}].zones[{j}]"),
                    format!("`{z}`: an availability zone is \"1\", \"2\" or \"3\""),
                ));
            }
            if let Some(id) = &p.vmss_id {
                if id.len() != 8 || !id.chars().all(|c| c.is_ascii_digit()) {
                    return Err(err(format!("pools[{i}].vmssId"), format!("`{id}`: expected 8 digits")));
                }
            }
            for (j, u) in p.updates.iter().enumerate() {
                validate_update(u).map_err(|m| err(format!("pools[{i}].updates[{j}]"), m))?;
            }
            total += p.count;
        }
        if total > MAX_NODES {
            return Err(err(
                "pools[].count".into(),
                format!("{total} nodes in all; an AKS cluster has at most {MAX_NODES} nodes"),
            ));
        }
        let node_names: std::collections::BTreeSet<String> = self.node_names().into_iter().collect();
        for (name, o) in &self.nodes {
            if !node_names.contains(name) {
                return Err(err(
                    format!("nodes.{name}"),
                    format!(
                        "no such node; the nodes are named like `{}`",
                        node_names.iter().next().cloned().unwrap_or_default()
                    ),
                ));
            }
            if let Some(ups) = &o.updates {
                for (j, u) in ups.iter().enumerate() {
                    validate_update(u).map_err(|m| err(format!("nodes.{name}.updates[{j}]"), m))?;
                }
            }
        }
        for (i, w) in self.workloads.iter().enumerate() {
            if !valid_dns_label(&w.name) {
                return Err(err(
                    format!("workloads[{i}].name"),
                    format!("`{}` is not a DNS-1123 label", w.name),
                ));
            }
            if !valid_dns_label(&w.namespace) {
                return Err(err(
                    format!("workloads[{i}].namespace"),
                    format!("`{}` is not a DNS-1123 label", w.namespace),
                ));
            }
            if let Some(pool) = &w.pool {
                match self.pools.iter().find(|p| &p.name == pool) {
                    None => return Err(err(format!("workloads[{i}].pool"), format!("no pool named `{pool}`"))),
                    Some(p) if p.os_type != OsType::Linux => {
                        return Err(err(
                            format!("workloads[{i}].pool"),
                            format!("pool `{pool}` is not a Linux pool"),
                        ))
                    }
                    _ => {}
                }
            }
            match (&w.kind, &w.schedule) {
                (WorkloadKind::CronJob, None) => {
                    return Err(err(
                        format!("workloads[{i}].schedule"),
                        "a CronJob needs a schedule".into(),
                    ))
                }
                (WorkloadKind::CronJob, Some(s)) => {
                    crate::cron::Schedule::parse(s).map_err(|m| err(format!("workloads[{i}].schedule"), m))?;
                }
                (_, Some(_)) => {
                    return Err(err(
                        format!("workloads[{i}].schedule"),
                        "only a CronJob has a schedule".into(),
                    ))
                }
                _ => {}
            }
            if !w.run_seconds.is_finite() || w.run_seconds < 0.0 {
                return Err(err(format!("workloads[{i}].runSeconds"), "must be ≥ 0".into()));
            }
            if let Some(pdb) = &w.pdb {
                if pdb.min_available.is_some() == pdb.max_unavailable.is_some() {
                    return Err(err(
                        format!("workloads[{i}].pdb"),
                        "set exactly one of minAvailable and maxUnavailable".into(),
                    ));
                }
            }
        }
        for (i, f) in self.faults.iter().enumerate() {
            if let Some(node) = f.node() {
                if !node_names.contains(node) {
                    return Err(err(format!("faults[{i}].node"), format!("no node named `{node}`")));
                }
            }
        }
        Ok(())
    }

    /// The liveness timings in force: (Lease renewal, node monitor grace period, node status
    /// report), in seconds. Unset ones follow the real kubelet and controller manager (10 s,
    /// 40 s, 5 min) ten times as fast, like the reboot timings, so that a node that stays
    /// down is Unknown within seconds; on clusters of more than 1,000 nodes they run at real
    /// speed, which keeps thousands of kubelets to a few hundred writes a second.
    pub fn liveness(&self) -> (f64, f64, f64) {
        let nodes: u32 = self.pools.iter().map(|p| p.count).sum();
        let scale = if nodes > 1000 { 1.0 } else { 0.1 };
        let t = &self.timing;
        (
            t.lease_renew_seconds.unwrap_or(10.0 * scale),
            t.node_monitor_grace_seconds.unwrap_or(40.0 * scale),
            t.node_status_seconds.unwrap_or(300.0 * scale),
        )
    }

    /// Node names in order, as AKS names them.
    pub fn node_names(&self) -> Vec<String> {
        self.pools
            .iter()
            .enumerate()
            .flat_map(|(i, p)| (0..p.count).map(move |k| node_name(p, i, k)))
            .collect()
    }
}

/// `aks-<pool>-<8 digits>-vmss00000k` for Linux, `<pool>00000k` style `aks<pool>00000k` for Windows.
pub fn node_name(pool: &PoolSpec, index: usize, k: u32) -> String {
    match pool.os_type {
        OsType::Windows => format!("aks{}{:06}", pool.name, k),
        OsType::Linux => format!("aks-{}-{}-vmss{:06}", pool.name, vmss_id(pool, index), k),
    }
}

pub fn vmss_id(pool: &PoolSpec, index: usize) -> String {
    pool.vmss_id
        .clone()
        .unwrap_or_else(|| format!("{}", 31415926 + index as u64 * 1111))
}

fn validate_update(u: &PackageUpdate) -> Result<(), String> {
    if u.name.is_empty() || !u.name.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) {
        return Err(format!("`{}` is not a Debian package name", u.name));
    }
    if u.from.is_empty()
        || u.to.is_empty()
        || u.from.contains(char::is_whitespace)
        || u.to.contains(char::is_whitespace)
    {
        return Err(format!(
            "package `{}`: `from` and `to` must be version strings without spaces",
            u.name
        ));
    }
    if let Some(k) = &u.kernel {
        if k.is_empty() || k.contains(char::is_whitespace) || k.contains('/') {
            return Err(format!("package `{}`: `kernel` `{k}` is not a kernel release", u.name));
        }
    }
    Ok(())
}

pub(crate) fn valid_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 90 && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.()".contains(c))
}

fn valid_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

pub(crate) fn default_subscription() -> String {
    "00000000-1111-2222-3333-444444444444".into()
}
pub(crate) fn default_tenant() -> String {
    "72f988bf-86f1-41af-91ab-2d7cd011db47".into()
}
fn default_rg() -> String {
    "rg-aks-sim".into()
}
fn default_location() -> String {
    "westeurope".into()
}
fn default_k8s_version() -> String {
    "1.31.5".into()
}
fn default_channel() -> UpgradeChannel {
    UpgradeChannel::Unmanaged
}
fn default_admin() -> String {
    "azureuser".into()
}
fn default_age_days() -> u32 {
    42
}
fn default_mode() -> String {
    "User".into()
}
fn default_os_type() -> OsType {
    OsType::Linux
}
/// The VM size of a pool that names none.
pub const DEFAULT_VM_SIZE: &str = "Standard_D4ds_v5";

fn default_vm_size() -> String {
    DEFAULT_VM_SIZE.into()
}
fn default_ssh_access() -> String {
    "LocalUser".into()
}
fn default_pocket() -> String {
    "jammy-updates".into()
}
fn default_namespace() -> String {
    "default".into()
}
fn default_replicas() -> u32 {
    1
}
fn default_grace() -> i64 {
    30
}
fn default_image() -> String {
    "mcr.microsoft.com/azuredocs/aks-helloworld:v1".into()
}
pub(crate) fn default_arm_page_size() -> usize {
    ARM_PAGE_SIZE
}

fn default_ssh_port() -> u16 {
    22
}
fn default_bastion() -> bool {
    true
}
fn default_run_seconds() -> f64 {
    1.0
}
fn default_user_name() -> String {
    "clusterUser".into()
}
fn default_user_role() -> String {
    "aks-sim-user".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_scenario_parses_and_has_every_kind_of_node() {
        let s = Scenario::default_scenario();
        assert!(s.pools.iter().any(|p| p.os_type == OsType::Windows));
        assert!(s.pools.iter().filter(|p| p.os_type == OsType::Linux).count() >= 2);
        assert!(s.nodes.values().any(|n| n.cordoned));
        assert!(s.nodes.values().any(|n| !n.reboot_required.is_empty()));
    }

    #[test]
    fn mixed_scenario_has_ubuntu_and_azure_linux_pools() {
        let s = Scenario::parse(include_str!("../scenarios/mixed.yaml"), "mixed.yaml").unwrap();
        let skus: Vec<&str> = s.pools.iter().filter_map(|p| p.os_sku.as_deref()).collect();
        assert_eq!(skus, ["Ubuntu", "AzureLinux"]);
        assert!(s.nodes.values().any(|n| !n.reboot_required.is_empty()));
    }

    #[test]
    fn batches_scenario_is_sixty_nodes_in_three_zones_half_requested() {
        let s = Scenario::parse(include_str!("../scenarios/batches.yaml"), "batches.yaml").unwrap();
        let nodes = crate::model::nodes(&s, [127, 77, 0]);
        assert_eq!(nodes.iter().filter(|n| n.is_linux()).count(), 60);
        for zone in ["1", "2", "3"] {
            assert_eq!(nodes.iter().filter(|n| n.zone.as_deref() == Some(zone)).count(), 20);
        }
        let user: Vec<_> = nodes.iter().filter(|n| n.pool == "user").collect();
        let size = resources::vm_size(&user[0].vm_size).unwrap();
        let allocatable = resources::node_resources(size, false, &s.cluster.kubernetes_version).allocatable;
        let requested: i128 = s
            .workloads
            .iter()
            .filter(|w| w.pool.as_deref() == Some("user"))
            .map(|w| w.requests.cpu.as_ref().map_or(0, Quantity::milli) * i128::from(w.replicas))
            .sum();
        let share = requested as f64 / (allocatable.cpu_millis as f64 * user.len() as f64);
        assert!(
            (0.4..=0.6).contains(&share),
            "the shop requests {share:.2} of the user pool's CPU"
        );
        assert!(s.workloads.iter().all(|w| !w.requests.is_empty()));
        assert!(s.workloads.iter().filter(|w| w.pdb.is_some()).count() >= 4);
        assert_eq!(s.timing.boot_seconds, 20.0, "bench.yaml's timing");
    }

    #[test]
    fn a_vm_size_aks_sim_does_not_know_is_refused_with_the_known_ones() {
        let text = "cluster: {name: c}\npools:\n  - name: a\n    count: 1\n    vmSize: Standard_Z99\n";
        let e = Scenario::parse(text, "x.yaml").unwrap_err().to_string();
        assert!(e.contains("pools[0].vmSize"), "{e}");
        assert!(e.contains("Standard_Z99"), "{e}");
        assert!(e.contains("Standard_D4ds_v5") && e.contains("Standard_E8s_v5"), "{e}");
        let lower = text.replace("Standard_Z99", "standard_d8s_v5");
        assert!(Scenario::parse(&lower, "x.yaml").is_ok());
    }

    #[test]
    fn zones_are_one_two_or_three() {
        let text = "cluster: {name: c}\npools:\n  - name: a\n    count: 1\n    zones: [\"1\", \"westeurope-2\"]\n";
        let e = Scenario::parse(text, "x.yaml").unwrap_err().to_string();
        assert!(e.contains("pools[0].zones[1]"), "{e}");
    }

    #[test]
    fn workload_requests_are_quantities_named_by_field() {
        let base =
            "cluster: {name: c}\npools:\n  - name: a\n    count: 1\nworkloads:\n  - {kind: Deployment, name: web, ";
        let s = Scenario::parse(&format!("{base}requests: {{cpu: 500m, memory: 256Mi}}}}\n"), "x.yaml").unwrap();
        let r = &s.workloads[0].requests;
        assert_eq!(r.cpu.as_ref().map(Quantity::milli), Some(500));
        assert_eq!(r.memory.as_ref().map(Quantity::as_str), Some("256Mi"));
        let s = Scenario::parse(&format!("{base}requests: {{cpu: 2}}}}\n"), "x.yaml").unwrap();
        assert_eq!(s.workloads[0].requests.cpu.as_ref().map(Quantity::milli), Some(2000));
        for (bad, field) in [
            ("requests: {cpu: lots}", "workloads[0].requests.cpu"),
            ("requests: {memory: 1GB}", "workloads[0].requests.memory"),
            ("requests: {cpu: -1}", "workloads[0].requests.cpu"),
            ("requests: {gpu: 1}", "workloads[0].requests"),
        ] {
            let e = Scenario::parse(&format!("{base}{bad}}}\n"), "x.yaml")
                .unwrap_err()
                .to_string();
            assert!(e.contains(field), "{bad}: {e}");
        }
    }

    #[test]
    fn unknown_field_is_named() {
        let text = "cluster: {name: c}\npools:\n  - name: a\n    count: 1\n    osTyp: Linux\n";
        let e = Scenario::parse(text, "x.yaml").unwrap_err().to_string();
        assert!(e.contains("pools[0]"), "{e}");
        assert!(e.contains("osTyp"), "{e}");
    }

    #[test]
    fn bad_enum_value_names_the_field() {
        let text = "cluster: {name: c}\npools:\n  - name: a\n    count: 1\n    osType: Plan9\n";
        let e = Scenario::parse(text, "x.yaml").unwrap_err().to_string();
        assert!(e.contains("pools[0].osType"), "{e}");
    }

    #[test]
    fn unknown_node_override_is_refused() {
        let text = "cluster: {name: c}\npools:\n  - name: a\n    count: 1\nnodes:\n  nope: {cordoned: true}\n";
        let e = Scenario::parse(text, "x.yaml").unwrap_err().to_string();
        assert!(e.contains("nodes.nope"), "{e}");
    }

    #[test]
    fn bastion_is_on_unless_turned_off() {
        let text = "cluster: {name: c}\npools:\n  - name: a\n    count: 1\n";
        assert!(Scenario::parse(text, "x.yaml").unwrap().bastion);
        let off = format!("{text}bastion: false\n");
        assert!(!Scenario::parse(&off, "x.yaml").unwrap().bastion);
        let bad = format!("{text}bastion: maybe\n");
        let e = Scenario::parse(&bad, "x.yaml").unwrap_err().to_string();
        assert!(e.contains("bastion"), "{e}");
    }

    #[test]
    fn scaling_keeps_the_system_pool_small() {
        let s = Scenario::default_scenario().with_linux_nodes(200).unwrap();
        let linux: u32 = s
            .pools
            .iter()
            .filter(|p| p.os_type == OsType::Linux)
            .map(|p| p.count)
            .sum();
        assert_eq!(linux, 200);
    }

    #[test]
    fn liveness_defaults_follow_the_cluster_size() {
        let small = Scenario::default_scenario();
        assert_eq!(small.liveness(), (1.0, 4.0, 30.0));
        let big = Scenario::default_scenario().with_linux_nodes(2000).unwrap();
        assert_eq!(big.liveness(), (10.0, 40.0, 300.0));
        let mut set = Scenario::default_scenario();
        set.timing.lease_renew_seconds = Some(0.2);
        set.timing.node_monitor_grace_seconds = Some(0.5);
        assert_eq!(set.liveness(), (0.2, 0.5, 30.0));
        let bad = "cluster: {name: c}\ntiming: {leaseRenewSeconds: 5, nodeMonitorGraceSeconds: 2}\npools:\n  - name: a\n    count: 1\n";
        let e = Scenario::parse(bad, "x.yaml").unwrap_err().to_string();
        assert!(e.contains("timing.nodeMonitorGraceSeconds"), "{e}");
    }

    #[test]
    fn every_node_count_from_one_works() {
        for n in 1..=12 {
            let (s, notes) = Scenario::default_scenario()
                .scale_linux_nodes(n)
                .unwrap_or_else(|e| panic!("--nodes {n}: {e}"));
            let linux: u32 = s
                .pools
                .iter()
                .filter(|p| p.os_type == OsType::Linux)
                .map(|p| p.count)
                .sum();
            assert_eq!(linux, n);
            let system = s.pools.iter().find(|p| p.name == "system").unwrap().count;
            assert!((1..=3).contains(&system), "--nodes {n}: {system} system nodes");
            // The default scenario's overrides name user nodes 1 and 2.
            let dropped = notes.iter().filter(|m| m.contains("overrides")).count();
            assert!(
                notes.iter().any(|m| m.contains("pool `azl` left empty")),
                "--nodes {n}: {notes:?}"
            );
            let users = n - system;
            assert_eq!(
                dropped,
                3usize.saturating_sub(users as usize).min(2),
                "--nodes {n}: {notes:?}"
            );
        }
        let (s, notes) = Scenario::default_scenario().scale_linux_nodes(1).unwrap();
        assert!(s.nodes.is_empty());
        assert!(notes.iter().any(|m| m.contains("default/debug-shell")), "{notes:?}");
        assert!(s.workloads.iter().all(|w| w.name != "node-problem-detector"));
        let (s, notes) = Scenario::default_scenario().scale_linux_nodes(5).unwrap();
        assert_eq!(
            notes,
            ["--nodes 5: pool `azl` left empty: --nodes fills the first (system) and the last Linux pool"],
            "5 nodes are the default cluster's Ubuntu nodes"
        );
        assert_eq!(s.pools.iter().find(|p| p.name == "azl").unwrap().count, 0);
        assert_eq!(s.nodes.len(), 2);
        assert!(Scenario::default_scenario().scale_linux_nodes(0).is_err());
        // AKS's 5,000-node limit counts every node: the Windows pool makes room.
        let (s, notes) = Scenario::default_scenario().scale_linux_nodes(5000).unwrap();
        assert_eq!(s.pools.iter().map(|p| p.count).sum::<u32>(), 5000);
        assert!(notes.iter().any(|m| m.contains("pool `win` shrunk by 2")), "{notes:?}");
        assert!(Scenario::default_scenario().scale_linux_nodes(5001).is_err());
    }
}
