//! The command line: clap definitions only. Everything here is plain data; the commands
//! (`commands/`) give it meaning. No clap type goes below `commands/`: the `From`
//! impls at the end map these to the library's own types.

use crate::duration::DurationError;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

const EXAMPLES: &str = "\
Examples:
  Find what needs patching in a cluster:
    aks-patch scan -g rg-shop-prod -n aks-shop-prod

  The same from a kubeconfig alone (no ARM):
    aks-patch scan --kubeconfig ~/.kube/config --context aks-shop-prod

  Patch and reboot one node at a time, without asking:
    aks-patch apply -g rg-shop-prod -n aks-shop-prod --one-at-a-time --yes

  The nodes as `kubectl get nodes -o wide` shows them, with patch state:
    aks-patch report -g rg-shop-prod -n aks-shop-prod --output wide

  Names of nodes that need a reboot, for a script:
    aks-patch scan -g rg-shop-prod -n aks-shop-prod --query \"[?rebootRequired].name\" -o tsv
";

#[derive(Debug, Parser)]
#[command(
    name = "aks-patch",
    version,
    about = "Keep the Linux nodes of AKS clusters patched: scan, rolling apt upgrade and reboot, report",
    long_about = "Keep the Linux nodes of Azure Kubernetes Service (AKS) clusters patched.\n\n\
AKS Linux nodes install security updates but are never rebooted for them. aks-patch finds the \
nodes through Azure Resource Manager and the Kubernetes API, probes them over SSH, and patches \
and reboots them one at a time, respecting PodDisruptionBudgets as `kubectl drain` does.",
    after_help = EXAMPLES,
    propagate_version = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Report pending updates, reboot markers and kernels of every Linux node. Changes nothing.
    #[command(
        after_help = "Examples:\n  aks-patch scan -g rg-shop-prod -n aks-shop-prod\n  aks-patch scan -g rg-shop-prod -n aks-shop-prod --fail-on reboot-required -o none\n  aks-patch scan --kubeconfig ./kubeconfig -o json --query \"[?pendingUpdates > `0`].{name:name, kernel:runningKernel}\"\n  aks-patch scan -g rg-shop-prod -n aks-shop-prod --via kube    # no SSH path: node-shell pods (RBAC: docs/rbac-via-kube.yaml)"
    )]
    Scan(ScanArgs),
    /// Upgrade packages and reboot nodes that need it, one node at a time, under a cluster-wide lock.
    #[command(
        after_help = "Examples:\n  aks-patch apply -g rg-shop-prod -n aks-shop-prod --one-at-a-time --dry-run\n  aks-patch apply -g rg-shop-prod -n aks-shop-prod --one-at-a-time --yes --nodepool user\n  aks-patch apply -g rg-shop-prod -n aks-shop-prod --yes --resume\n  aks-patch apply -g rg-shop-prod -n aks-shop-prod --one-at-a-time --yes --window 'Sat,Sun 01:00-05:00' --time-zone Europe/Berlin --notify-url https://hooks.slack.com/services/...\n  aks-patch apply -g rg-shop-prod -n aks-shop-prod --one-at-a-time --yes --window aks --wait-for-window --prometheus-url http://prometheus:9090\n  aks-patch apply -g rg-shop-prod -n aks-shop-prod --one-at-a-time --yes --via kube"
    )]
    Apply(Box<ApplyArgs>),
    /// The nodes as `kubectl get nodes` shows them, with patch state. No SSH: fast.
    #[command(
        after_help = "Examples:\n  aks-patch report -g rg-shop-prod -n aks-shop-prod\n  aks-patch report -g rg-shop-prod -n aks-shop-prod --output wide\n  aks-patch report --kubeconfig ./kubeconfig -o yaml\n  aks-patch report -g rg-shop-prod -n aks-shop-prod -o prometheus > /var/lib/node_exporter/aks-patch.prom"
    )]
    Report(ReportArgs),
    /// Many clusters at once: scan them, patch them in stages, report on them.
    Fleet(FleetArgs),
}

/// `aks-patch fleet`: the clusters chosen by subscription, tag, resource group, name, a
/// Resource Graph clause, an AKS Fleet Manager fleet or a file of ids.
#[derive(Debug, Args)]
pub struct FleetArgs {
    #[command(subcommand)]
    pub command: FleetCommand,
}

#[derive(Debug, Subcommand)]
pub enum FleetCommand {
    /// Scan every chosen cluster at once: one row a cluster (per-node detail with -o json).
    #[command(
        after_help = "Examples:\n  aks-patch fleet scan --tag env=prod\n  aks-patch fleet scan --subscription SUB1 --subscription SUB2 --max-clusters 4 -o json\n  aks-patch fleet scan --fleet rg-fleet/fleet-1 --fail-on reboot-required -o none\n  aks-patch fleet scan --where \"location =~ 'westeurope'\" -g rg-shop"
    )]
    Scan(Box<ScanArgs<FleetScanTarget>>),
    /// Patch the chosen clusters in stages, each with exactly the rollout of `apply`.
    #[command(
        after_help = "Examples:\n  aks-patch fleet apply --tag team=shop --stage env=dev --stage env=staging --stage env=prod --stage-wait 1h --one-at-a-time --yes\n  aks-patch fleet apply --fleet rg-fleet/fleet-1 --update-strategy safe-rollout --max-clusters 2 --one-at-a-time --yes\n  aks-patch fleet apply --resume --yes"
    )]
    Apply(Box<ApplyArgs<FleetApplyTarget>>),
    /// One row a cluster from the last scans and runs (no SSH).
    #[command(
        after_help = "Examples:\n  aks-patch fleet report --tag env=prod\n  aks-patch fleet report -o json --query \"[?rebootRequired > `0`].cluster\""
    )]
    Report(Box<FleetReportArgs>),
}

impl FleetCommand {
    pub fn global(&self) -> &GlobalArgs {
        match self {
            FleetCommand::Scan(a) => &a.global,
            FleetCommand::Apply(a) => &a.global,
            FleetCommand::Report(a) => &a.global,
        }
    }
}

/// Which clusters a fleet command works on.
#[derive(Debug, Clone, Args)]
pub struct FleetSelectArgs {
    /// Subscription ID or name to look in (repeatable; default: every subscription the credential can list).
    #[arg(long = "subscription", value_name = "ID", value_parser = non_empty)]
    pub subscriptions: Vec<String>,
    /// Only clusters with this tag (repeatable: all must match).
    #[arg(long = "tag", value_name = "KEY=VALUE", value_parser = tag_selector)]
    pub tags: Vec<crate::fleet::select::TagSelector>,
    /// Only clusters in this resource group (repeatable).
    #[arg(short = 'g', long = "resource-group", value_name = "RG", value_parser = non_empty)]
    pub resource_groups: Vec<String>,
    /// Only clusters of these names (repeatable, or a comma list).
    #[arg(short = 'n', long = "name", value_name = "CLUSTER", value_delimiter = ',', value_parser = non_empty)]
    pub names: Vec<String>,
    /// A Azure Resource Graph condition on the clusters, appended as `| where (CLAUSE)`.
    #[arg(long = "where", value_name = "CLAUSE", value_parser = non_empty)]
    pub clause: Option<String>,
    /// The members of an AKS Fleet Manager fleet instead (RG/NAME, in the first --subscription).
    #[arg(long, value_name = "RG/NAME", value_parser = fleet_name, conflicts_with_all = ["tags", "resource_groups", "names", "clause", "clusters_file"])]
    pub fleet: Option<(String, String)>,
    /// The clusters of a file instead: one resource id a line (`#` comments).
    #[arg(long, value_name = "FILE", conflicts_with_all = ["tags", "resource_groups", "names", "clause"])]
    pub clusters_file: Option<PathBuf>,
    /// Use each cluster's admin credential (listClusterAdminCredential).
    #[arg(long)]
    pub admin: bool,
    /// Which credential to use for ARM.
    #[arg(long, value_enum, default_value_t = AuthMethod::Auto)]
    pub auth: AuthMethod,
    /// Azure cloud.
    #[arg(long, value_enum, default_value_t = CloudName::AzureCloud)]
    pub cloud: CloudName,
}

/// `fleet scan`'s clusters.
#[derive(Debug, Clone, Args)]
pub struct FleetScanTarget {
    #[command(flatten)]
    pub select: FleetSelectArgs,
    /// Clusters scanned at once, at most.
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub max_clusters: u32,
}

/// `fleet apply`'s clusters and stages.
#[derive(Debug, Clone, Args)]
pub struct FleetApplyTarget {
    #[command(flatten)]
    pub select: FleetSelectArgs,
    /// A stage: the clusters whose tags match (KEY=VALUE[,KEY=VALUE]); repeat in order.
    #[arg(long = "stage", value_name = "KEY=VALUE[,...]", value_parser = tag_set)]
    pub stages: Vec<crate::fleet::select::TagSet>,
    /// The stages of this update strategy of the --fleet (stages of groups, their waits).
    #[arg(long, value_name = "NAME", requires = "fleet", conflicts_with = "stages", value_parser = non_empty)]
    pub update_strategy: Option<String>,
    /// Clusters patched at once, at most (within a stage).
    #[arg(long, value_name = "N", default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub max_clusters: u32,
    /// Soak between stages (e.g. 30m, 1h); a strategy's own afterStageWaitInSeconds wins.
    #[arg(long, value_name = "DURATION", default_value = "0s", value_parser = duration)]
    pub stage_wait: std::time::Duration,
    /// A failed cluster lets the others of its stage finish (later stages still do not start).
    #[arg(long)]
    pub continue_stage: bool,
}

/// `fleet report`'s arguments.
#[derive(Debug, Args)]
pub struct FleetReportArgs {
    #[command(flatten)]
    pub select: FleetSelectArgs,
    #[command(flatten)]
    pub global: GlobalArgs,
}

/// Output format, as the Azure CLI's `--output`, plus `wide`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum OutputFormat {
    /// Columns for people.
    #[default]
    Table,
    /// More columns (for `report`: exactly `kubectl get nodes -o wide`, then patch state).
    Wide,
    /// JSON.
    Json,
    /// JSON, coloured.
    Jsonc,
    /// YAML.
    Yaml,
    /// YAML, coloured.
    Yamlc,
    /// Tab-separated values, no headers: for scripts.
    Tsv,
    /// No output (exit code only).
    None,
    /// Prometheus text exposition format (`report` only: for node_exporter's textfile collector).
    Prometheus,
}

/// Arguments every command takes: the Azure CLI's global ones.
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = OutputFormat::Table, global = true)]
    pub output: OutputFormat,
    /// JMESPath query applied to the result before formatting (see http://jmespath.org).
    #[arg(long, global = true, value_name = "JMESPATH")]
    pub query: Option<String>,
    /// Print more about what is happening (to stderr).
    #[arg(long, global = true)]
    pub verbose: bool,
    /// Print everything, including HTTP requests (never their secrets), to stderr.
    #[arg(long, global = true)]
    pub debug: bool,
    /// Print only errors: no warnings, no progress.
    #[arg(long, global = true)]
    pub only_show_errors: bool,
}

/// How aks-patch finds the cluster.
#[derive(Debug, Clone, Args)]
pub struct ClusterArgs {
    /// Resource group of the cluster (with -n). Inside a pod, leave out -g/-n and --kubeconfig
    /// to patch the pod's own cluster as its ServiceAccount.
    #[arg(
        short = 'g',
        long = "resource-group",
        value_name = "RG",
        requires = "name",
        value_parser = non_empty
    )]
    pub resource_group: Option<String>,
    /// Name of the AKS cluster.
    #[arg(
        short = 'n',
        long = "name",
        value_name = "CLUSTER",
        requires = "resource_group",
        value_parser = non_empty
    )]
    pub name: Option<String>,
    /// Subscription ID or name (default: AZURE_SUBSCRIPTION_ID, else the Azure CLI's current account).
    #[arg(long, value_name = "ID", value_parser = non_empty)]
    pub subscription: Option<String>,
    /// Use the cluster admin credential (listClusterAdminCredential) instead of the user one.
    #[arg(long)]
    pub admin: bool,
    /// Work from a kubeconfig alone, without ARM.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["resource_group", "name", "subscription", "admin"])]
    pub kubeconfig: Option<PathBuf>,
    /// Context in the kubeconfig (default: its current context).
    #[arg(long, value_name = "NAME", requires = "kubeconfig", value_parser = non_empty)]
    pub context: Option<String>,
    /// Which credential to use for ARM.
    #[arg(long, value_enum, default_value_t = AuthMethod::Auto)]
    pub auth: AuthMethod,
    /// Azure cloud.
    #[arg(long, value_enum, default_value_t = CloudName::AzureCloud)]
    pub cloud: CloudName,
}

/// Where run records are kept (`--run-record`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RunRecordPlace {
    /// A JSON file per run in the journal directory.
    File,
    /// A ConfigMap per run, in the namespace aks-patch runs in.
    Cluster,
}

impl From<RunRecordPlace> for crate::rollout::record_store::RecordPlace {
    fn from(p: RunRecordPlace) -> Self {
        match p {
            RunRecordPlace::File => crate::rollout::record_store::RecordPlace::File,
            RunRecordPlace::Cluster => crate::rollout::record_store::RecordPlace::Cluster,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuthMethod {
    /// Environment service principal, then workload identity, managed identity, Azure CLI.
    Auto,
    /// AZURE_CLIENT_ID, AZURE_TENANT_ID and AZURE_CLIENT_SECRET.
    Env,
    /// AZURE_CLIENT_ID, AZURE_TENANT_ID and AZURE_FEDERATED_TOKEN_FILE.
    WorkloadIdentity,
    /// The VM's or pod's managed identity.
    ManagedIdentity,
    /// `az account get-access-token`.
    Cli,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CloudName {
    #[value(name = "AzureCloud")]
    AzureCloud,
    #[value(name = "AzureChinaCloud")]
    AzureChinaCloud,
    #[value(name = "AzureUSGovernment")]
    AzureUsGovernment,
}

/// How aks-patch reaches the nodes over SSH.
#[derive(Debug, Clone, Args)]
pub struct SshArgs {
    /// SSH user (default: the cluster's linuxProfile.adminUsername, else azureuser).
    #[arg(long, value_name = "USER", value_parser = non_empty)]
    pub ssh_user: Option<String>,
    /// Private key file (default: AKS_PATCH_SSH_KEY, else your ssh agent and ssh config).
    #[arg(long, value_name = "FILE", env = "AKS_PATCH_SSH_KEY")]
    pub ssh_key: Option<PathBuf>,
    /// SSH port on the nodes.
    #[arg(long, value_name = "PORT", default_value_t = 22, value_parser = clap::value_parser!(u16).range(1..))]
    pub ssh_port: u16,
    /// Jump host (bastion): user@host[:port].
    #[arg(long, value_name = "USER@HOST[:PORT]", value_parser = non_empty)]
    pub ssh_jump: Option<String>,
    /// An ssh_config file to use.
    #[arg(long, value_name = "FILE")]
    pub ssh_config: Option<PathBuf>,
    /// Refuse nodes whose host key is not known yet (default: accept new keys, refuse changed ones).
    #[arg(long)]
    pub ssh_strict_host_keys: bool,
    /// Seconds to wait for each node's SSH connection and probe.
    #[arg(long, value_name = "SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub ssh_timeout: u64,
}

/// How aks-patch reaches the nodes (`--via`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ViaArg {
    /// SSH to each node's InternalIP: needs a network path to the nodes (VNet, VPN or
    /// --ssh-jump) and pools with SSH access.
    Ssh,
    /// A short-lived privileged node-shell pod per node, through the Kubernetes API
    /// (pods/exec over WebSocket, nsenter into the host): needs only the kubeconfig, and the
    /// RBAC in docs/rbac-via-kube.yaml (on top of docs/rbac.yaml).
    Kube,
    /// VM scale set run commands through ARM alone (no network path to the nodes or the API
    /// server's exec needed): needs -g/-n and runCommands/write (or runCommand/action) on the
    /// node resource group. Slow: one run command at a time per VM, 20 s or more each.
    RunCommand,
}

#[derive(Debug, Clone, Args)]
pub struct ViaArgs {
    /// How to reach the nodes: `ssh` (default), or `kube` when there is no SSH path (private
    /// node IPs, `sshAccess: Disabled` pools): node-shell pods over the Kubernetes API, or
    /// `run-command` when only ARM is reachable: VM scale set run commands.
    /// Inside a pod the default is `kube` (a pod has no SSH path to the nodes).
    #[arg(long, value_enum, value_name = "TRANSPORT", default_value_t = ViaArg::Ssh, env = "AKS_PATCH_VIA")]
    pub via: ViaArg,
    /// `--via` was given (on the command line or by AKS_PATCH_VIA), not left at its default.
    #[arg(skip)]
    pub via_given: bool,
    /// The node-shell pods' image (--via kube): it must be pullable by the nodes and have `nsenter` and `sh`.
    #[arg(long, value_name = "IMAGE", default_value = crate::transport::kube::DEFAULT_IMAGE, value_parser = non_empty)]
    pub node_shell_image: String,
    /// The namespace of the node-shell pods (--via kube).
    #[arg(long, value_name = "NAMESPACE", default_value = crate::transport::kube::DEFAULT_NAMESPACE, value_parser = non_empty)]
    pub node_shell_namespace: String,
    /// Seconds a node-shell pod may take to start (--via kube; the counterpart of --ssh-timeout).
    #[arg(long, value_name = "SECONDS", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    pub connect_timeout: u64,
}

/// `scan`'s arguments; `C` is which clusters: one ([`ClusterArgs`]) or a fleet's.
#[derive(Debug, Clone, Args)]
pub struct ScanArgs<C: Args = ClusterArgs> {
    #[command(flatten)]
    pub cluster: C,
    #[command(flatten)]
    pub ssh: SshArgs,
    #[command(flatten)]
    pub via: ViaArgs,
    /// How many nodes to probe at once.
    #[arg(long, value_name = "N", default_value_t = crate::transport::DEFAULT_PARALLEL, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub parallel: u32,
    /// Run `apt-get update` (Azure Linux: `tdnf makecache`) on each node first (otherwise nothing on the nodes changes).
    #[arg(long)]
    pub refresh: bool,
    /// Exit with code 6 when a node needs a reboot, or has pending updates.
    #[arg(long, value_enum, value_name = "CONDITION")]
    pub fail_on: Option<FailOn>,
    #[command(flatten)]
    pub metrics: Box<MetricsArgs>,
    #[command(flatten)]
    pub global: GlobalArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FailOn {
    RebootRequired,
    Pending,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    #[command(flatten)]
    pub cluster: ClusterArgs,
    /// Where the run records are read from (see `apply --run-record`).
    #[arg(long, value_enum, value_name = "PLACE", env = "AKS_PATCH_RUN_RECORD")]
    pub run_record: Option<RunRecordPlace>,
    #[command(flatten)]
    pub global: GlobalArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum UpgradeMode {
    /// Only packages from the -security pocket (what unattended-upgrades installs); refused on Azure Linux (see --azure-linux-security-as-all).
    Security,
    /// All upgrades, installing new packages they need (new kernels): `apt-get upgrade --with-new-pkgs`; Azure Linux: `tdnf -y update --refresh`.
    All,
    /// `apt-get dist-upgrade`: may also remove packages; Azure Linux: as all.
    Dist,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RebootPolicy {
    /// Reboot when /var/run/reboot-required is there after the upgrade.
    IfRequired,
    /// Reboot every node.
    Always,
    /// Never reboot (upgrade only).
    Never,
}

/// `apply`'s arguments; `C` is which clusters: one ([`ClusterArgs`]) or a fleet's, each of
/// which gets exactly these rollout flags ([`ApplyArgs::for_cluster`]).
#[derive(Debug, Clone, Args)]
pub struct ApplyArgs<C: Args = ClusterArgs> {
    #[command(flatten)]
    pub cluster: C,
    #[command(flatten)]
    pub ssh: SshArgs,
    #[command(flatten)]
    pub via: Box<ViaArgs>,
    /// How many nodes the pre-flight (and --dry-run) probes at once, as `scan --parallel`.
    #[arg(long, value_name = "N", default_value_t = crate::transport::DEFAULT_PARALLEL, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub parallel: u32,
    /// Patch one node at a time (the default way; `--one-at-a-time` or `--max-unavailable` is
    /// required so that nobody gets a pace by surprise; `--resume` keeps the run's own).
    #[arg(long, required_unless_present_any = ["max_unavailable", "resume"], conflicts_with = "max_unavailable")]
    pub one_at_a_time: bool,
    /// Patch nodes in batches: at most N nodes (or P% of each pool, rounded down, at least 1)
    /// out of service at once, counting nodes out for any other reason; one availability zone
    /// at a time, sized so the evicted pods fit on the nodes that stay and no PDB is exceeded.
    #[arg(long, value_name = "N|P%", value_parser = max_unavailable)]
    pub max_unavailable: Option<crate::rollout::batches::MaxUnavailable>,
    /// With --max-unavailable: a batch may take nodes of several availability zones.
    #[arg(long, requires = "max_unavailable")]
    pub across_zones: bool,
    /// Only nodes of these pools (comma-separated or repeated).
    #[arg(long, value_name = "POOL", value_delimiter = ',', value_parser = non_empty)]
    pub nodepool: Vec<String>,
    /// Only these nodes (comma-separated or repeated).
    #[arg(long, value_name = "NODE", value_delimiter = ',', value_parser = non_empty)]
    pub nodes: Vec<String>,
    /// Only nodes matching this label selector (e.g. `kubernetes.azure.com/mode=user`).
    #[arg(long, short = 'l', value_name = "SELECTOR", value_parser = non_empty)]
    pub selector: Option<String>,
    /// Which upgrades to install.
    #[arg(long, value_enum, default_value_t = UpgradeMode::All)]
    pub upgrade_mode: UpgradeMode,
    /// When to reboot.
    #[arg(long, value_enum, default_value_t = RebootPolicy::IfRequired)]
    pub reboot: RebootPolicy,
    /// Show the plan, the pods each drain would evict and the PDBs that block now; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Do not ask for confirmation.
    #[arg(short = 'y', long)]
    pub yes: bool,
    /// Evict pods with emptyDir volumes (their data is lost), as kubectl drain --delete-emptydir-data.
    #[arg(long)]
    pub delete_emptydir_data: bool,
    /// Evict pods with no controller (they are not recreated), as kubectl drain --force.
    #[arg(long)]
    pub force: bool,
    /// Grace period for evicted pods, in seconds; -1 (the default) means each pod's own, as with kubectl drain.
    #[arg(long, value_name = "SECONDS", allow_hyphen_values = true, value_parser = clap::value_parser!(i64).range(-1..))]
    pub grace_period: Option<i64>,
    /// Give up draining a node after this many seconds (PDBs that keep refusing).
    #[arg(long, value_name = "SECONDS", default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..))]
    pub drain_timeout: u64,
    /// Give up waiting for a rebooted node after this many seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 900, value_parser = clap::value_parser!(u64).range(1..))]
    pub reboot_timeout: u64,
    /// Before taking a node out, wait up to this many seconds for every other node to be Ready and the last node's workloads to be Ready again; then stop.
    #[arg(long, value_name = "SECONDS", default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..))]
    pub health_wait: u64,
    /// Fail when the Kubernetes API server does not answer the first request within this many seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub request_timeout: u64,
    /// On Azure Linux nodes, which classify no update as security, install all updates when `--upgrade-mode security` is asked (otherwise such nodes are refused).
    #[arg(long)]
    pub azure_linux_security_as_all: bool,
    /// Patch Azure Linux 2.0 (CBL-Mariner) nodes, out of support since 30 Nov 2025 (otherwise they are refused; migrate them to Azure Linux 3).
    #[arg(long)]
    pub allow_azure_linux_2: bool,
    /// Take a node out even when pods it runs would have nowhere to go (no other schedulable Ready node matches their nodeSelector, required node affinity and tolerations): they stay Pending until it is back. Otherwise the run refuses before any change, or stops before that node's cordon.
    #[arg(long)]
    pub allow_pending_pods: bool,
    /// Do not put the PreferNoSchedule taint aks-patch.io/pending=<run id> on the nodes still to patch (it makes the pods each drain evicts prefer the nodes already patched, so that they move once; it is removed from each node when its turn ends, and from all of them when the run ends).
    #[arg(long)]
    pub no_pending_taint: bool,
    /// Wait this long after a node is back before the next one.
    #[arg(long, value_name = "SECONDS", default_value_t = 0)]
    pub soak: u64,
    /// Take over a lock left behind by a run that died.
    #[arg(long)]
    pub force_unlock: bool,
    /// Continue the last interrupted run of this cluster.
    #[arg(long)]
    pub resume: bool,
    /// Continue the newest unfinished run of this cluster if there is one (as --resume, its
    /// options the record's), else start a new run: for schedules (the CronJob), so that a
    /// run killed half-way is finished by the next.
    #[arg(long, conflicts_with = "resume")]
    pub resume_or_start: bool,
    /// Where run records are kept (default: runs/ in the state directory: $AKS_PATCH_STATE_DIR, else $XDG_STATE_HOME/aks-patch, else ~/.local/state/aks-patch).
    #[arg(long, value_name = "DIR")]
    pub journal_dir: Option<PathBuf>,
    /// Where the run record is kept: `file` (in --journal-dir; the default outside a pod) or
    /// `cluster` (a ConfigMap per run in the pod's namespace, or the kubeconfig context's;
    /// the default in a pod with no cluster named, whose files die with it). `--resume` looks
    /// in the same place: give the same choice again.
    #[arg(long, value_enum, value_name = "PLACE", env = "AKS_PATCH_RUN_RECORD")]
    pub run_record: Option<RunRecordPlace>,
    /// Seconds between retries of an eviction refused by a PodDisruptionBudget.
    #[arg(long, value_name = "SECONDS", default_value_t = 5, hide = true, value_parser = clap::value_parser!(u64).range(1..))]
    pub eviction_retry_interval: u64,
    #[command(flatten)]
    pub window: Box<WindowArgs>,
    #[command(flatten)]
    pub blockers: Box<BlockerArgs>,
    #[command(flatten)]
    pub notify: Box<NotifyArgs>,
    #[command(flatten)]
    pub metrics: Box<MetricsArgs>,
    #[command(flatten)]
    pub global: GlobalArgs,
    /// The options that shape the rollout given on the command line (or by their environment
    /// variable), as opposed to left at their defaults (filled in by [`Cli::parse_with_sources`]).
    #[arg(skip)]
    pub given: Box<crate::rollout::resume::GivenFlags>,
}

/// Notifications for `apply`.
#[derive(Args, Debug, Clone)]
pub struct NotifyArgs {
    /// Send the rollout's events (run started, node started, node done, node halted or left cordoned, run finished) to this webhook (repeatable): Slack (https://hooks.slack.com/...), a Teams workflow, or a generic JSON webhook (webhook+https://...); slack+ and teams+ prefixes force the service. Never printed.
    #[arg(long, value_name = "URL", value_parser = non_empty, env = "AKS_PATCH_NOTIFY_URL", hide_env_values = true)]
    pub notify_url: Vec<String>,
    /// The notification text, with fields {event} {cluster} {node} {pool} {kernel_before} {kernel_after} {duration} {reason} {run_id} {text}.
    #[arg(long, value_name = "TEMPLATE", value_parser = non_empty)]
    pub notify_template: Option<String>,
}

/// Metrics for `scan` and `apply`.
#[derive(Args, Debug, Clone)]
pub struct MetricsArgs {
    /// Push the results as Prometheus gauges to this Pushgateway (job aks-patch-scan or aks-patch-apply, grouped by cluster); a failed push is a warning.
    #[arg(long, value_name = "URL", value_parser = non_empty, env = "AKS_PATCH_PUSHGATEWAY_URL", hide_env_values = true)]
    pub pushgateway_url: Option<String>,
}

/// Where a blocking pod counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BlockingPodScope {
    /// Anywhere in the cluster.
    Cluster,
    /// On the node about to be taken out.
    Node,
}

/// Blockers for `apply` (kured's, plus a wait).
#[derive(Args, Debug, Clone)]
pub struct BlockerArgs {
    /// No node is taken out while pods matching this label selector exist (repeatable), e.g. `app=backup`.
    #[arg(long, value_name = "SELECTOR", value_parser = non_empty)]
    pub blocking_pod_selector: Vec<String>,
    /// Where a blocking pod counts: anywhere in the cluster, or on the node about to be taken out.
    #[arg(long, value_enum, default_value_t = BlockingPodScope::Cluster)]
    pub blocking_pod_scope: BlockingPodScope,
    /// No node is taken out while this Prometheus server has active alerts (its /api/v1/alerts) that are not filtered out; an unreachable one blocks too.
    #[arg(long, value_name = "URL", value_parser = non_empty, env = "AKS_PATCH_PROMETHEUS_URL", hide_env_values = true)]
    pub prometheus_url: Option<String>,
    /// Ignore the alerts whose name matches this regular expression (with --alert-filter-match-only: only those block).
    #[arg(long, value_name = "REGEX", value_parser = non_empty)]
    pub alert_filter_regexp: Option<String>,
    /// Only the alerts matching --alert-filter-regexp block.
    #[arg(long)]
    pub alert_filter_match_only: bool,
    /// Only firing alerts block (not pending ones).
    #[arg(long)]
    pub alert_firing_only: bool,
    /// Wait this long for the blockers to clear before a node is taken out (re-checking), then stop at that safe point with exit 9 (e.g. 10m, 90s).
    #[arg(long, value_name = "DURATION", default_value = "10m", allow_hyphen_values = true, value_parser = duration)]
    pub blocker_wait: std::time::Duration,
}

/// Maintenance windows for `apply`.
#[derive(Args, Debug, Clone)]
pub struct WindowArgs {
    /// Take nodes out only inside this window: `DAYS HH:MM-HH:MM` (e.g. `Sat,Sun 01:00-05:00`, `Mon-Fri 22:00-02:00`: a range may wrap midnight; days are optional), or `aks` for the cluster's planned-maintenance schedule (aksManagedNodeOSUpgradeSchedule, else default). Repeatable. Outside it, apply exits 8 with the next opening.
    #[arg(long = "window", value_name = "WINDOW")]
    pub windows: Vec<String>,
    /// Time zone of the --window times (IANA name, e.g. Europe/Berlin). Checked even without --window (a script may pass it to every run), where it changes nothing.
    #[arg(long, value_name = "ZONE", default_value = "UTC")]
    pub time_zone: String,
    /// How long a node is out (cordon to uncordon) when no past run of this cluster tells; a node is taken out only if it should be back before its window closes (e.g. 15m, 1h).
    #[arg(long, value_name = "DURATION", default_value = "15m", allow_hyphen_values = true, value_parser = positive_duration)]
    pub node_budget: std::time::Duration,
    /// Outside the window, wait for it to open (a countdown on a terminal) instead of exiting 8.
    #[arg(long)]
    pub wait_for_window: bool,
}

impl<C: Args> ApplyArgs<C> {
    /// The same rollout flags for one cluster: what a fleet gives each cluster's `apply`.
    pub fn for_cluster(self, cluster: ClusterArgs) -> ApplyArgs {
        ApplyArgs {
            cluster,
            ssh: self.ssh,
            via: self.via,
            parallel: self.parallel,
            one_at_a_time: self.one_at_a_time,
            max_unavailable: self.max_unavailable,
            across_zones: self.across_zones,
            nodepool: self.nodepool,
            nodes: self.nodes,
            selector: self.selector,
            upgrade_mode: self.upgrade_mode,
            reboot: self.reboot,
            dry_run: self.dry_run,
            yes: self.yes,
            delete_emptydir_data: self.delete_emptydir_data,
            force: self.force,
            grace_period: self.grace_period,
            drain_timeout: self.drain_timeout,
            reboot_timeout: self.reboot_timeout,
            health_wait: self.health_wait,
            request_timeout: self.request_timeout,
            azure_linux_security_as_all: self.azure_linux_security_as_all,
            allow_azure_linux_2: self.allow_azure_linux_2,
            allow_pending_pods: self.allow_pending_pods,
            no_pending_taint: self.no_pending_taint,
            soak: self.soak,
            force_unlock: self.force_unlock,
            resume: self.resume,
            resume_or_start: self.resume_or_start,
            journal_dir: self.journal_dir,
            run_record: self.run_record,
            eviction_retry_interval: self.eviction_retry_interval,
            window: self.window,
            blockers: self.blockers,
            notify: self.notify,
            metrics: self.metrics,
            global: self.global,
            given: self.given,
        }
    }
}

impl<C: Args> ScanArgs<C> {
    /// The same scan flags for one cluster.
    pub fn for_cluster(self, cluster: ClusterArgs) -> ScanArgs {
        ScanArgs {
            cluster,
            ssh: self.ssh,
            via: self.via,
            parallel: self.parallel,
            refresh: self.refresh,
            fail_on: self.fail_on,
            metrics: self.metrics,
            global: self.global,
        }
    }
}

impl ClusterArgs {
    /// One cluster of a fleet, found through ARM with the fleet's credential settings.
    pub fn arm(subscription: &str, resource_group: &str, name: &str, select: &FleetSelectArgs) -> ClusterArgs {
        ClusterArgs {
            resource_group: Some(resource_group.to_string()),
            name: Some(name.to_string()),
            subscription: Some(subscription.to_string()),
            admin: select.admin,
            kubeconfig: None,
            context: None,
            auth: select.auth,
            cloud: select.cloud,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Where each value came from

impl Cli {
    /// Parse the process's arguments (exiting on a usage error, as `parse` does), and note
    /// which of `apply`'s options were given rather than left at their defaults.
    pub fn parse_with_sources() -> Cli {
        Cli::try_parse_with_sources_from(std::env::args_os()).unwrap_or_else(|e| e.exit())
    }

    pub fn try_parse_with_sources_from<I, T>(args: I) -> Result<Cli, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        use clap::{CommandFactory, FromArgMatches};
        let matches = Cli::command().try_get_matches_from(args)?;
        let mut cli = Cli::from_arg_matches(&matches)?;
        if let (Command::Apply(a), Some(("apply", sub))) = (&mut cli.command, matches.subcommand()) {
            *a.given = given_flags(sub);
        }
        let given = |m: &clap::ArgMatches, id: &str| {
            matches!(
                m.value_source(id),
                Some(clap::parser::ValueSource::CommandLine | clap::parser::ValueSource::EnvVariable)
            )
        };
        match (&mut cli.command, matches.subcommand()) {
            (Command::Apply(a), Some((_, sub))) => a.via.via_given = given(sub, "via"),
            (Command::Scan(a), Some((_, sub))) => a.via.via_given = given(sub, "via"),
            (Command::Fleet(f), Some((_, fleet))) => match (&mut f.command, fleet.subcommand()) {
                (FleetCommand::Apply(a), Some((_, sub))) => {
                    *a.given = given_flags(sub);
                    a.via.via_given = given(sub, "via");
                }
                (FleetCommand::Scan(a), Some((_, sub))) => a.via.via_given = given(sub, "via"),
                _ => {}
            },
            _ => {}
        }
        Ok(cli)
    }
}

/// The clap argument id of a recorded flag.
fn arg_id(flag: crate::rollout::resume::Flag) -> &'static str {
    use crate::rollout::resume::Flag;
    match flag {
        Flag::OneAtATime => "one_at_a_time",
        Flag::MaxUnavailable => "max_unavailable",
        Flag::AcrossZones => "across_zones",
        Flag::UpgradeMode => "upgrade_mode",
        Flag::Reboot => "reboot",
        Flag::DeleteEmptydirData => "delete_emptydir_data",
        Flag::Force => "force",
        Flag::GracePeriod => "grace_period",
        Flag::DrainTimeout => "drain_timeout",
        Flag::RebootTimeout => "reboot_timeout",
        Flag::HealthWait => "health_wait",
        Flag::Soak => "soak",
        Flag::NoPendingTaint => "no_pending_taint",
        Flag::Nodepool => "nodepool",
        Flag::Nodes => "nodes",
        Flag::Selector => "selector",
        Flag::Window => "windows",
        Flag::TimeZone => "time_zone",
        Flag::NodeBudget => "node_budget",
        Flag::WaitForWindow => "wait_for_window",
        Flag::BlockingPodSelector => "blocking_pod_selector",
        Flag::BlockingPodScope => "blocking_pod_scope",
        Flag::PrometheusUrl => "prometheus_url",
        Flag::AlertFilterRegexp => "alert_filter_regexp",
        Flag::AlertFilterMatchOnly => "alert_filter_match_only",
        Flag::AlertFiringOnly => "alert_firing_only",
        Flag::BlockerWait => "blocker_wait",
        Flag::Via => "via",
        Flag::NodeShellImage => "node_shell_image",
        Flag::NodeShellNamespace => "node_shell_namespace",
        Flag::Parallel => "parallel",
        Flag::NotifyUrl => "notify_url",
        Flag::NotifyTemplate => "notify_template",
        Flag::PushgatewayUrl => "pushgateway_url",
    }
}

/// The recorded flags of `apply` given on the command line or by their environment variable.
fn given_flags(m: &clap::ArgMatches) -> crate::rollout::resume::GivenFlags {
    use clap::parser::ValueSource;
    crate::rollout::resume::GivenFlags::new(crate::rollout::resume::Flag::ALL.into_iter().filter(|f| {
        matches!(
            m.value_source(arg_id(*f)),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        )
    }))
}

// ---------------------------------------------------------------------------------------
// Value parsers: a bad value is a usage error (exit 2) that names it and the fix, before
// anything is contacted. clap prints `invalid value 'VALUE' for '--FLAG <NAME>': MESSAGE`.

/// `--max-unavailable`: a node count or a percentage of each pool.
fn max_unavailable(
    text: &str,
) -> Result<crate::rollout::batches::MaxUnavailable, crate::rollout::batches::MaxUnavailableError> {
    text.parse()
}

/// An empty value where a flag needs one.
#[derive(Debug, thiserror::Error)]
#[error("an empty value: give one, or leave the flag out (a comma list must not have empty items, as in `a,,b`)")]
struct EmptyValue;

/// Any text but an empty one (an empty item of a comma list too: `--nodes a,,b`).
fn tag_selector(s: &str) -> Result<crate::fleet::select::TagSelector, crate::fleet::select::SelectorError> {
    s.parse()
}

fn tag_set(s: &str) -> Result<crate::fleet::select::TagSet, crate::fleet::select::SelectorError> {
    s.parse()
}

#[derive(Debug, thiserror::Error)]
#[error("give the fleet as RESOURCE-GROUP/NAME, such as rg-fleet/fleet-1")]
struct FleetName;

fn fleet_name(s: &str) -> Result<(String, String), FleetName> {
    match s.trim().split_once('/') {
        Some((rg, name)) if !rg.is_empty() && !name.is_empty() && !name.contains('/') => {
            Ok((rg.to_string(), name.to_string()))
        }
        _ => Err(FleetName),
    }
}

fn non_empty(s: &str) -> Result<String, EmptyValue> {
    if s.trim().is_empty() {
        Err(EmptyValue)
    } else {
        Ok(s.to_string())
    }
}

/// A duration (`15m`, `1h30m`, `90s`, seconds alone); a negative one is refused by name
/// (given as `-5m`, which clap would otherwise take for a flag).
fn duration(s: &str) -> Result<std::time::Duration, DurationError> {
    if s.trim_start().starts_with('-') {
        return Err(DurationError::Negative);
    }
    crate::duration::parse(s)
}

/// A duration above zero, for times during which something must fit (a node out of service).
fn positive_duration(s: &str) -> Result<std::time::Duration, DurationError> {
    if s.trim_start().starts_with('-') {
        return Err(DurationError::NegativeNotPositive);
    }
    let d = crate::duration::parse(s)?;
    if d.is_zero() {
        return Err(DurationError::Zero);
    }
    Ok(d)
}

// ---------------------------------------------------------------------------------------
// To the library's types

impl GlobalArgs {
    /// What `--verbose`, `--debug` and `--only-show-errors` ask for.
    pub fn verbosity(&self) -> crate::output::Verbosity {
        crate::output::Verbosity::from_flags(self.verbose, self.debug, self.only_show_errors)
    }
}

impl From<OutputFormat> for crate::output::OutputFormat {
    fn from(f: OutputFormat) -> Self {
        match f {
            OutputFormat::Table => Self::Table,
            OutputFormat::Wide => Self::Wide,
            OutputFormat::Json => Self::Json,
            OutputFormat::Jsonc => Self::Jsonc,
            OutputFormat::Yaml => Self::Yaml,
            OutputFormat::Yamlc => Self::Yamlc,
            OutputFormat::Tsv => Self::Tsv,
            OutputFormat::None => Self::None,
            OutputFormat::Prometheus => Self::Prometheus,
        }
    }
}

impl From<AuthMethod> for crate::azure::AuthMethod {
    fn from(m: AuthMethod) -> Self {
        match m {
            AuthMethod::Auto => Self::Auto,
            AuthMethod::Env => Self::Env,
            AuthMethod::WorkloadIdentity => Self::WorkloadIdentity,
            AuthMethod::ManagedIdentity => Self::ManagedIdentity,
            AuthMethod::Cli => Self::Cli,
        }
    }
}

impl From<CloudName> for crate::azure::CloudName {
    fn from(c: CloudName) -> Self {
        match c {
            CloudName::AzureCloud => Self::AzureCloud,
            CloudName::AzureChinaCloud => Self::AzureChinaCloud,
            CloudName::AzureUsGovernment => Self::AzureUsGovernment,
        }
    }
}

impl From<UpgradeMode> for crate::node::UpgradeMode {
    fn from(m: UpgradeMode) -> Self {
        match m {
            UpgradeMode::Security => Self::Security,
            UpgradeMode::All => Self::All,
            UpgradeMode::Dist => Self::Dist,
        }
    }
}

impl From<&SshArgs> for crate::ssh::SshFlags {
    fn from(a: &SshArgs) -> Self {
        Self {
            user: a.ssh_user.clone(),
            key: a.ssh_key.clone(),
            port: a.ssh_port,
            jump: a.ssh_jump.clone(),
            config: a.ssh_config.clone(),
            strict_host_keys: a.ssh_strict_host_keys,
            timeout_secs: a.ssh_timeout,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_maps_to_the_library_value_of_the_same_name() {
        for v in AuthMethod::value_variants() {
            assert_eq!(format!("{v:?}"), format!("{:?}", crate::azure::AuthMethod::from(*v)));
        }
        for v in CloudName::value_variants() {
            assert_eq!(format!("{v:?}"), format!("{:?}", crate::azure::CloudName::from(*v)));
        }
        for v in UpgradeMode::value_variants() {
            assert_eq!(format!("{v:?}"), format!("{:?}", crate::node::UpgradeMode::from(*v)));
        }
        for v in OutputFormat::value_variants() {
            assert_eq!(format!("{v:?}"), format!("{:?}", crate::output::OutputFormat::from(*v)));
        }
    }

    #[test]
    fn given_flags_are_those_on_the_command_line_or_in_the_environment_not_defaults() {
        use crate::rollout::resume::Flag;
        let base = ["aks-patch", "apply", "--kubeconfig", "kc"];
        let parse = |extra: &[&str]| {
            let cli = Cli::try_parse_with_sources_from(base.iter().chain(extra)).unwrap();
            let Command::Apply(a) = cli.command else {
                panic!("apply")
            };
            a.given
        };
        let given = |extra: &[&str]| parse(&[&["--one-at-a-time"], extra].concat());
        let none = given(&[]);
        assert!(
            Flag::ALL.iter().all(|f| *f == Flag::OneAtATime || !none.has(*f)),
            "defaults are not given: {none:?}"
        );
        assert!(none.has(Flag::OneAtATime));
        let batches = parse(&["--max-unavailable=10%", "--across-zones"]);
        assert!(batches.has(Flag::MaxUnavailable) && batches.has(Flag::AcrossZones));
        assert!(!batches.has(Flag::OneAtATime));
        // A flag given with its default value is given all the same.
        let g = given(&["--window", "10:00-12:00", "--time-zone", "UTC", "--nodepool", "user"]);
        assert!(g.has(Flag::Window) && g.has(Flag::TimeZone) && g.has(Flag::Nodepool));
        assert!(!g.has(Flag::NodeBudget) && !g.has(Flag::Via));
        // Every recorded flag names an argument of apply (value_source knows each id).
        let all = given(&[
            "--upgrade-mode=all",
            "--reboot=always",
            "--delete-emptydir-data",
            "--force",
            "--grace-period=5",
            "--drain-timeout=5",
            "--reboot-timeout=5",
            "--health-wait=5",
            "--soak=5",
            "--no-pending-taint",
            "--nodepool=p",
            "--nodes=n",
            "--selector=a=b",
            "--window=aks",
            "--time-zone=UTC",
            "--node-budget=5m",
            "--wait-for-window",
            "--blocking-pod-selector=a=b",
            "--blocking-pod-scope=node",
            "--prometheus-url=http://p",
            "--alert-filter-regexp=x",
            "--alert-filter-match-only",
            "--alert-firing-only",
            "--blocker-wait=5s",
            "--via=kube",
            "--node-shell-image=i",
            "--node-shell-namespace=n",
            "--parallel=4",
            "--notify-url=https://h",
            "--notify-template=t",
            "--pushgateway-url=http://g",
        ]);
        let missing: Vec<_> = Flag::ALL
            .iter()
            .filter(|f| !all.has(**f) && !batches.has(**f) && **f != Flag::OneAtATime)
            .collect();
        assert!(missing.is_empty(), "{missing:?}");
    }

    #[test]
    fn a_fleet_gives_each_cluster_exactly_its_rollout_flags() {
        let cli = Cli::try_parse_with_sources_from([
            "aks-patch",
            "fleet",
            "apply",
            "--subscription",
            "s1",
            "--subscription",
            "s2",
            "--tag",
            "team=shop",
            "--stage",
            "env=dev",
            "--stage",
            "env=prod,region=eu",
            "--max-clusters",
            "2",
            "--stage-wait",
            "30m",
            "--one-at-a-time",
            "--soak",
            "30",
            "--nodepool",
            "user",
            "--yes",
        ])
        .unwrap();
        let Command::Fleet(f) = cli.command else {
            panic!("fleet")
        };
        let FleetCommand::Apply(a) = f.command else {
            panic!("apply")
        };
        assert_eq!(a.cluster.select.subscriptions, ["s1", "s2"]);
        assert_eq!(a.cluster.stages.len(), 2);
        assert_eq!(a.cluster.stages[1].to_string(), "env=prod,region=eu");
        assert_eq!(a.cluster.stage_wait, std::time::Duration::from_secs(1800));
        assert!(
            a.given.has(crate::rollout::resume::Flag::Soak),
            "given flags are kept for --resume"
        );
        let select = a.cluster.select.clone();
        let one = a.for_cluster(ClusterArgs::arm("s2", "rg-b", "aks-b", &select));
        assert_eq!(
            (
                one.cluster.subscription.as_deref(),
                one.cluster.resource_group.as_deref(),
                one.cluster.name.as_deref()
            ),
            (Some("s2"), Some("rg-b"), Some("aks-b"))
        );
        assert!(one.one_at_a_time && one.yes);
        assert_eq!((one.soak, one.nodepool.as_slice()), (30, &["user".to_string()][..]));
    }

    #[test]
    fn fleet_selectors_are_checked_before_anything_is_asked() {
        let parse = |extra: &[&str]| {
            let mut argv = vec!["aks-patch", "fleet", "scan"];
            argv.extend_from_slice(extra);
            Cli::try_parse_from(argv)
        };
        let e = parse(&["--tag", "env"]).unwrap_err();
        assert!(e.to_string().contains("`env` is not KEY=VALUE"), "{e}");
        let e = parse(&["--fleet", "fleet-1"]).unwrap_err();
        assert!(e.to_string().contains("RESOURCE-GROUP/NAME"), "{e}");
        let e = parse(&["--fleet", "rg/f", "--tag", "env=prod"]).unwrap_err();
        assert!(e.to_string().contains("cannot be used with"), "{e}");
        let e = parse(&["--max-clusters", "0"]).unwrap_err();
        assert!(e.to_string().contains("--max-clusters"), "{e}");
        let e = Cli::try_parse_from([
            "aks-patch",
            "fleet",
            "apply",
            "--update-strategy",
            "s",
            "--one-at-a-time",
        ])
        .unwrap_err();
        assert!(e.to_string().contains("--fleet"), "a strategy belongs to a fleet: {e}");
        assert!(parse(&["--fleet", "rg/f"]).is_ok());
    }

    #[test]
    fn ssh_flags_carry_every_ssh_argument() {
        let cli = Cli::parse_from([
            "aks-patch",
            "scan",
            "--kubeconfig",
            "kc",
            "--ssh-user",
            "ops",
            "--ssh-key",
            "/k",
            "--ssh-port",
            "2222",
            "--ssh-jump",
            "ops@bastion",
            "--ssh-config",
            "/c",
            "--ssh-strict-host-keys",
            "--ssh-timeout",
            "7",
        ]);
        let Command::Scan(a) = cli.command else { panic!("scan") };
        assert_eq!(
            crate::ssh::SshFlags::from(&a.ssh),
            crate::ssh::SshFlags {
                user: Some("ops".into()),
                key: Some("/k".into()),
                port: 2222,
                jump: Some("ops@bastion".into()),
                config: Some("/c".into()),
                strict_host_keys: true,
                timeout_secs: 7,
            }
        );
    }

    fn apply(extra: &[&str]) -> Result<ApplyArgs, clap::Error> {
        let mut argv = vec!["aks-patch", "apply", "--one-at-a-time", "--kubeconfig", "kc"];
        argv.extend_from_slice(extra);
        match Cli::try_parse_from(argv)?.command {
            Command::Apply(a) => Ok(*a),
            _ => panic!("apply"),
        }
    }

    fn refused(extra: &[&str]) -> String {
        let e = apply(extra).expect_err("refused");
        assert_eq!(e.exit_code(), 2, "{e}");
        e.to_string()
    }

    #[test]
    fn a_node_budget_must_be_above_zero_and_a_negative_one_is_named() {
        let e = refused(&["--node-budget", "0"]);
        assert!(e.contains("'0'") && e.contains("above zero"), "{e}");
        let e = refused(&["--node-budget", "-5m"]);
        assert!(e.contains("'-5m'") && e.contains("negative"), "{e}");
        assert!(!e.contains("unexpected argument"), "{e}");
        let e = refused(&["--node-budget", "15x"]);
        assert!(e.contains("`15x` is not a duration"), "{e}");
        let a = apply(&["--node-budget", "1h30m"]).unwrap();
        assert_eq!(a.window.node_budget, std::time::Duration::from_secs(5400));
    }

    #[test]
    fn a_huge_duration_is_a_usage_error_that_says_what_is_taken() {
        for huge in ["99999999999999999999h", "99999999999999999999"] {
            let e = refused(&["--blocker-wait", huge]);
            assert!(e.contains(huge) && e.contains("--blocker-wait"), "{e}");
            assert!(e.contains("1h30m") || e.contains("too long"), "{e}");
        }
    }

    #[test]
    fn a_blocker_wait_of_zero_checks_once_and_a_negative_one_is_named() {
        let a = apply(&["--blocker-wait", "0"]).unwrap();
        assert!(a.blockers.blocker_wait.is_zero());
        let e = refused(&["--blocker-wait", "-5s"]);
        assert!(e.contains("'-5s'") && e.contains("negative"), "{e}");
    }

    #[test]
    fn empty_values_and_empty_list_items_are_refused() {
        for extra in [
            &["--nodes", ""][..],
            &["--nodes", "a,,b"],
            &["--nodes", "a,"],
            &["--nodepool", ""],
            &["--node-shell-image", ""],
            &["--node-shell-namespace", " "],
            &["--selector", ""],
            &["--notify-url", ""],
            &["--prometheus-url", ""],
            &["--alert-filter-regexp", ""],
            &["--ssh-user", ""],
        ] {
            let e = refused(extra);
            assert!(e.contains(extra[0]) && e.contains("an empty value"), "{extra:?}: {e}");
        }
        let a = apply(&["--nodes", "a,b", "--nodes", "c"]).unwrap();
        assert_eq!(a.nodes, ["a", "b", "c"]);
    }

    #[test]
    fn zero_is_refused_where_it_means_nothing() {
        for flag in ["--ssh-timeout", "--ssh-port", "--drain-timeout", "--reboot-timeout"] {
            let e = refused(&[flag, "0"]);
            assert!(e.contains(flag) && e.contains("'0'"), "{e}");
        }
        assert_eq!(apply(&["--soak", "0"]).unwrap().soak, 0, "no soak is a choice");
    }

    #[test]
    fn resource_group_and_name_go_together_and_a_pod_needs_neither() {
        let parse = |argv: &[&str]| Cli::try_parse_with_sources_from([&["aks-patch", "scan"], argv].concat());
        for half in [&["-g", "rg"][..], &["-n", "c"][..]] {
            let e = parse(half).expect_err("-g without -n (or -n without -g) is refused");
            assert_eq!(e.kind(), clap::error::ErrorKind::MissingRequiredArgument, "{e}");
        }
        assert!(parse(&["-g", "rg", "-n", "c"]).is_ok());
        // Whether a cluster is named at all is decided later: a pod patches its own.
        assert!(parse(&[]).is_ok());
    }

    #[test]
    fn via_left_at_its_default_is_told_from_via_given() {
        let via = |argv: &[&str]| match Cli::try_parse_with_sources_from([&["aks-patch", "scan"], argv].concat())
            .unwrap()
            .command
        {
            Command::Scan(a) => (a.via.via, a.via.via_given),
            _ => unreachable!(),
        };
        assert_eq!(via(&[]), (ViaArg::Ssh, false));
        assert_eq!(via(&["--via", "ssh"]), (ViaArg::Ssh, true));
        assert_eq!(via(&["--via", "kube"]), (ViaArg::Kube, true));
    }
}
