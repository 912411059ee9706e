//! The run record: every apply is written as JSON to the journal directory after every
//! step, before the next side effect. `--resume` continues from it, Ctrl-C handling and
//! the final summary read it, `report` shows "last patched" from it, and `-o json`
//! prints it.
//!
//! Each write goes to a temporary file that is fsynced, renamed over the record and the
//! directory fsynced: a record on disk is whole and survives a power loss. Records carry a
//! schema version ([`SCHEMA_VERSION`]); records without one (written before it) still read,
//! records of a newer aks-patch are refused.

use crate::kube::run_records::RecordObjectError;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("cannot write the run record {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read the run record {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the run record {path} is not valid JSON")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("the run record {path} was written by a newer aks-patch (schema version {version}; this one reads up to {SCHEMA_VERSION}): upgrade aks-patch to read it")]
    Newer { path: PathBuf, version: u64 },
    /// The record kept in the cluster (`--run-record cluster`) could not be written.
    #[error("cannot write the run record ConfigMap {object}")]
    ClusterWrite {
        object: ObjectRef,
        #[source]
        source: Box<RecordObjectError>,
    },
    /// The records kept in the cluster could not be read.
    #[error("cannot read the run records (ConfigMaps) in namespace {namespace}")]
    ClusterRead {
        namespace: String,
        #[source]
        source: Box<RecordObjectError>,
    },
}

impl JournalError {
    /// Where the record is (a file, or a ConfigMap), in words.
    pub fn location(&self) -> String {
        match self {
            JournalError::Write { path, .. }
            | JournalError::Read { path, .. }
            | JournalError::Parse { path, .. }
            | JournalError::Newer { path, .. } => path.display().to_string(),
            JournalError::ClusterWrite { object, .. } => format!("ConfigMap {object}"),
            JournalError::ClusterRead { namespace, .. } => format!("the ConfigMaps in namespace {namespace}"),
        }
    }

    /// The cause, in words (the OS's, the parser's, or the API server's).
    pub fn cause(&self) -> String {
        match self {
            JournalError::Write { source, .. } | JournalError::Read { source, .. } => source.to_string(),
            JournalError::Parse { source, .. } => source.to_string(),
            JournalError::Newer { .. } => self.to_string(),
            JournalError::ClusterWrite { source, .. } | JournalError::ClusterRead { source, .. } => source.to_string(),
        }
    }

    /// The API server refused this identity access to the records kept in the cluster
    /// (401 or 403).
    pub fn refused_access(&self) -> bool {
        match self {
            JournalError::ClusterWrite { source, .. } | JournalError::ClusterRead { source, .. } => source
                .api()
                .and_then(crate::kube::KubeError::status_code)
                .is_some_and(|c| c == 401 || c == 403),
            _ => false,
        }
    }

    /// What to do so that the record can be written again.
    pub fn remedy(&self) -> String {
        match self {
            JournalError::ClusterWrite { object, source } => match source.as_ref() {
                RecordObjectError::TooLarge { .. } => "keep the record in a file instead (--run-record file, with the state directory on a persistent volume), or patch fewer nodes per run (--nodepool, --nodes)".into(),
                RecordObjectError::Conflict { .. } => format!(
                    "another aks-patch wrote this run's record: look for a second run (kubectl get configmaps -A -l {})",
                    crate::kube::run_records::RECORD_LABEL
                ),
                _ => format!(
                    "let this identity get, list, create and update ConfigMaps in namespace {} (deploy/'s Role does) and check that the API server answers",
                    object.namespace
                ),
            },
            JournalError::ClusterRead { namespace, .. } => format!(
                "let this identity get, list, create and update ConfigMaps in namespace {namespace} (deploy/'s Role does) and check that the API server answers"
            ),
            other => {
                let location = other.location();
                let dir = Path::new(&location)
                    .parent()
                    .map(|d| d.display().to_string())
                    .unwrap_or(location);
                format!("free space in {dir} (or make it writable)")
            }
        }
    }
}

/// The version of the run record's layout this aks-patch writes. 1: the records written
/// before `schemaVersion` existed (their options lack selection, window, blockers, transport
/// and notifications); 2: every option that shapes the rollout is recorded.
pub const SCHEMA_VERSION: u32 = 2;

fn schema_v1() -> u32 {
    1
}

/// Which cluster a record is about.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ClusterRef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_group: Option<String>,
    pub name: String,
    /// A file-name-safe key: `<subscription>_<rg>_<name>`, `kubeconfig_<context>_<server>`
    /// or `in-cluster_<server>`.
    pub key: String,
    /// In a pod: the namespace aks-patch ran in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// In a pod: the ServiceAccount it ran as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account: Option<String>,
}

impl ClusterRef {
    pub fn arm(subscription: &str, resource_group: &str, name: &str) -> ClusterRef {
        ClusterRef {
            subscription: Some(subscription.to_string()),
            resource_group: Some(resource_group.to_string()),
            name: name.to_string(),
            key: sanitize(&format!("{subscription}_{resource_group}_{name}").to_lowercase()),
            namespace: None,
            service_account: None,
        }
    }

    pub fn kubeconfig(context: &str, server: &str) -> ClusterRef {
        ClusterRef {
            subscription: None,
            resource_group: None,
            name: context.to_string(),
            key: sanitize(&format!("kubeconfig_{context}_{server}")),
            namespace: None,
            service_account: None,
        }
    }

    /// The cluster a pod runs in, reached at `server` (the in-cluster API server address):
    /// its runs are one cluster's, whichever pod (namespace, ServiceAccount) ran them.
    pub fn in_cluster(server: &str, namespace: &str, service_account: Option<&str>) -> ClusterRef {
        ClusterRef {
            subscription: None,
            resource_group: None,
            name: format!("the cluster at {server}"),
            key: sanitize(&format!("in-cluster_{server}")),
            namespace: Some(namespace.to_string()),
            service_account: service_account.map(str::to_string),
        }
    }
}

fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum RunStatus {
    Running,
    Succeeded,
    Failed,
    Interrupted,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum NodeState {
    /// Not started yet.
    Pending,
    /// Not to be touched: see `skipReason`.
    Skipped,
    /// Packages upgraded; reboot not decided yet.
    Upgraded,
    Cordoned,
    Drained,
    /// Reboot command sent; waiting for the node.
    Rebooting,
    /// New bootID, Ready.
    Back,
    /// Finished: patched (and rebooted if it needed it), uncordoned unless it was cordoned before.
    Done,
    Failed,
    /// The node was deleted from the cluster (scaled in) since the run began.
    Gone,
    /// Rebooted (a new bootID, Ready) and put back in service, but not proven patched: the
    /// check after the reboot (marker, pending updates) could not be made (see `error`).
    /// Never counted as patched; `--resume` proves it first.
    Unproven,
}

impl NodeState {
    /// A node in one of these states may be unschedulable because of us.
    pub fn is_out(&self) -> bool {
        matches!(
            self,
            NodeState::Cordoned | NodeState::Drained | NodeState::Rebooting | NodeState::Back
        )
    }
}

/// A step of a node's turn, as the record names it.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum StepName {
    /// Logging in (records written by 0.1.0; the probe logs in now).
    Connect,
    /// The read-only probe: kernel, pending updates, reboot marker.
    Probe,
    Upgrade,
    /// Nothing else out, the last drain's workloads and budgets recovered.
    HealthGate,
    Cordon,
    Drain,
    Reboot,
    /// A new bootID and Ready.
    WaitReady,
    /// The marker gone, the kernel, nothing pending.
    Verify,
    /// The node put back in service.
    Uncordon,
    /// The node's mark removed; it stays cordoned, as it was before aks-patch.
    Unmark,
}

/// How a step ended (`running` while under way).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum StepOutcome {
    Running,
    Ok,
    Warning,
    Failed,
    Skipped,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Step {
    pub name: StepName,
    #[serde(with = "ms")]
    pub started_at: Time,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_ms")]
    pub finished_at: Option<Time>,
    pub outcome: StepOutcome,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct UpgradedPackage {
    pub name: String,
    pub version: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NodeRecord {
    pub name: String,
    pub pool: String,
    pub state: NodeState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_reason: Option<String>,
    #[serde(default)]
    pub steps: Vec<Step>,
    #[serde(default)]
    pub packages_upgraded: Vec<UpgradedPackage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel_before: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kernel_after: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id_before: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id_after: Option<String>,
    /// The node was cordoned before aks-patch came: it stays cordoned.
    #[serde(default)]
    pub was_cordoned: bool,
    /// `--max-unavailable`: the batch (1-based) the node was taken in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<usize>,
    #[serde(default)]
    pub rebooted: bool,
    /// Pods evicted by the drain, with when each was created.
    #[serde(default)]
    pub evicted: Vec<Evicted>,
    /// PDBs of the evicted pods, waited on before the next node is taken out.
    #[serde(default)]
    pub pdbs: Vec<ObjectRef>,
    /// Controllers of the evicted pods: Ready again before the next node is disrupted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workloads: Vec<crate::kube::drain::WorkloadRef>,
    /// Cordoned and marked by aks-patch (this run or the one it resumed) and not yet
    /// released: the node is out of service in our hands.
    #[serde(default)]
    pub in_hand: bool,
    /// The apt output, kept for the record (tail).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub upgrade_output: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_ms")]
    pub finished_at: Option<Time>,
    /// What its `done` rests on: the observations after the reboot (or the upgrade).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proof: Option<super::proof::ProofRecord>,
}

impl NodeRecord {
    pub fn new(name: &str, pool: &str) -> NodeRecord {
        NodeRecord {
            name: name.to_string(),
            pool: pool.to_string(),
            state: NodeState::Pending,
            skip_reason: None,
            steps: vec![],
            packages_upgraded: vec![],
            kernel_before: None,
            kernel_after: None,
            boot_id_before: None,
            boot_id_after: None,
            was_cordoned: false,
            batch: None,
            rebooted: false,
            evicted: vec![],
            pdbs: vec![],
            workloads: vec![],
            in_hand: false,
            upgrade_output: String::new(),
            error: None,
            finished_at: None,
            proof: None,
        }
    }

    /// Out of service in the run's hands: cordoned and not released, or rebooting, or back
    /// from the reboot and not yet put back. A resume finishes such nodes first.
    pub fn left_out(&self) -> bool {
        self.in_hand || matches!(self.state, NodeState::Rebooting | NodeState::Back)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RunRecord {
    /// The layout of this record ([`SCHEMA_VERSION`]; 1 when absent: an older record).
    #[serde(default = "schema_v1")]
    pub schema_version: u32,
    pub run_id: String,
    pub cluster: ClusterRef,
    pub status: RunStatus,
    #[serde(with = "ms")]
    pub started_at: Time,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_ms")]
    pub finished_at: Option<Time>,
    /// Who ran it: `user@host pid N`.
    pub holder: String,
    /// The options that matter for a resume (upgrade mode, reboot policy, drain flags...):
    /// a resumed run uses these.
    pub options: RunOptions,
    pub nodes: Vec<NodeRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Runs this one resumed, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resumed_from: Vec<String>,
    /// When the first of the runs this one continues began (`None`: none): the evictions of
    /// the whole rollout are counted from then ([`RunRecord::evictions`]).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_ms")]
    pub chain_started_at: Option<Time>,
}

impl RunRecord {
    /// The run did not succeed and has nodes left to finish.
    pub fn unfinished(&self) -> bool {
        self.status != RunStatus::Succeeded
            && self
                .nodes
                .iter()
                .any(|n| !matches!(n.state, NodeState::Done | NodeState::Skipped | NodeState::Gone))
    }
}

pub use crate::node::UpgradeMode;

/// When a run reboots a node.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum RebootPolicy {
    #[serde(alias = "ifrequired")]
    IfRequired,
    Always,
    Never,
}

/// `--max-unavailable` in the record as typed on the command line (`3`, `10%`).
mod max_unavailable_text {
    use crate::rollout::batches::MaxUnavailable;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<MaxUnavailable>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(m) => s.collect_str(m),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<MaxUnavailable>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|t| t.parse().map_err(serde::de::Error::custom))
            .transpose()
    }
}

/// The options of a run that a resume must keep.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RunOptions {
    /// `--max-unavailable`: nodes go out in batches of at most this many (`None`:
    /// `--one-at-a-time`).
    #[serde(default, skip_serializing_if = "Option::is_none", with = "max_unavailable_text")]
    pub max_unavailable: Option<crate::rollout::batches::MaxUnavailable>,
    /// `--across-zones`: a batch may take nodes of several availability zones.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub across_zones: bool,
    pub upgrade_mode: UpgradeMode,
    pub reboot: RebootPolicy,
    pub delete_emptydir_data: bool,
    pub force: bool,
    /// Seconds; `None`: each pod's own.
    #[serde(default)]
    pub grace_period: Option<i64>,
    /// Seconds.
    pub drain_timeout: u64,
    /// Seconds.
    pub reboot_timeout: u64,
    /// Seconds.
    #[serde(default)]
    pub soak: u64,
    /// `--upgrade-mode security` installs all updates on Azure Linux nodes, which classify
    /// none reliably (`--azure-linux-security-as-all`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub azure_linux_security_as_all: bool,
    /// Azure Linux 2.0 nodes, out of support, are patched (`--allow-azure-linux-2`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_azure_linux_2: bool,
    /// Nodes are taken out even when pods they run would have nowhere to go (stay Pending)
    /// (`--allow-pending-pods`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_pending_pods: bool,
    /// The nodes still to do do not get the pending taint (`--no-pending-taint`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_pending_taint: bool,
    /// Seconds the health gate waits for the cluster before a node is taken out
    /// (`--health-wait`; schema 2).
    #[serde(default = "default_health_wait")]
    pub health_wait: u64,
    /// Which nodes (schema 2).
    #[serde(default)]
    pub selection: Selection,
    /// The maintenance windows (schema 2).
    #[serde(default)]
    pub window: WindowOptions,
    /// The blockers (schema 2).
    #[serde(default)]
    pub blockers: BlockerOptions,
    /// How the nodes are reached (schema 2).
    #[serde(default)]
    pub transport: TransportOptions,
    /// Notifications and metrics, recorded as given or not: their URLs are secrets and are
    /// never written (schema 2).
    #[serde(default)]
    pub notify: NotifyOptions,
}

fn default_health_wait() -> u64 {
    600
}

/// Which nodes a run patches (`--nodepool`, `--nodes`, `--selector`): empty means all.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Selection {
    #[serde(default)]
    pub nodepools: Vec<String>,
    #[serde(default)]
    pub nodes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
}

/// The maintenance windows a run keeps to (`--window`, `--time-zone`, `--node-budget`,
/// `--wait-for-window`): no windows, none.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct WindowOptions {
    /// As given: `DAYS HH:MM-HH:MM`, or `aks`.
    #[serde(default)]
    pub windows: Vec<String>,
    /// IANA name.
    pub time_zone: String,
    /// Seconds.
    pub node_budget: u64,
    #[serde(default)]
    pub wait_for_window: bool,
}

impl Default for WindowOptions {
    fn default() -> Self {
        WindowOptions {
            windows: vec![],
            time_zone: "UTC".into(),
            node_budget: 15 * 60,
            wait_for_window: false,
        }
    }
}

/// The blockers a run waits for (`--blocking-pod-selector`, `--prometheus-url` and its alert
/// filters, `--blocker-wait`). The Prometheus URL may carry credentials: only whether one
/// was given is recorded, and a resume must give it again.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct BlockerOptions {
    #[serde(default)]
    pub pod_selectors: Vec<String>,
    #[serde(default)]
    pub pod_scope: crate::rollout::blockers::PodScope,
    /// `--prometheus-url` was given (the URL is not recorded).
    #[serde(default)]
    pub prometheus: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert_filter_regexp: Option<String>,
    #[serde(default)]
    pub alert_filter_match_only: bool,
    #[serde(default)]
    pub alert_firing_only: bool,
    /// Seconds.
    pub wait: u64,
}

impl Default for BlockerOptions {
    fn default() -> Self {
        BlockerOptions {
            pod_selectors: vec![],
            pod_scope: Default::default(),
            prometheus: false,
            alert_filter_regexp: None,
            alert_filter_match_only: false,
            alert_firing_only: false,
            wait: 10 * 60,
        }
    }
}

/// How the nodes are reached (`--via`, and the node-shell pods' image and namespace), and
/// how many the pre-flight probes at once (`--parallel`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TransportOptions {
    pub via: crate::transport::Via,
    pub node_shell_image: String,
    pub node_shell_namespace: String,
    #[serde(default = "default_parallel")]
    pub parallel: u32,
}

fn default_parallel() -> u32 {
    crate::transport::DEFAULT_PARALLEL
}

impl Default for TransportOptions {
    fn default() -> Self {
        TransportOptions {
            via: crate::transport::Via::Ssh,
            node_shell_image: crate::transport::kube::DEFAULT_IMAGE.into(),
            node_shell_namespace: crate::transport::kube::DEFAULT_NAMESPACE.into(),
            parallel: crate::transport::DEFAULT_PARALLEL,
        }
    }
}

/// Where a run tells what it does. The URLs are secrets: only whether they were given.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct NotifyOptions {
    /// `--notify-url` was given (the URLs are not recorded).
    #[serde(default)]
    pub webhooks: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// `--pushgateway-url` was given (the URL is not recorded).
    #[serde(default)]
    pub pushgateway: bool,
}

pub use crate::kube::objects::ObjectRef;

/// A pod a drain of the run evicted, and when it was created (records written before it was
/// kept, and pods the API server gave no time for, have none). Records of 0.1.0 wrote the
/// `namespace/name` string; it still reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Evicted {
    pub namespace: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_ms")]
    pub created: Option<Time>,
}

impl<'de> Deserialize<'de> for Evicted {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Evicted, D::Error> {
        #[derive(Deserialize)]
        struct Full {
            namespace: String,
            name: String,
            #[serde(default, with = "opt_ms")]
            created: Option<Time>,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Repr {
            Full(Full),
            Text(ObjectRef),
        }
        Ok(match Repr::deserialize(d)? {
            Repr::Full(f) => Evicted {
                namespace: f.namespace,
                name: f.name,
                created: f.created,
            },
            Repr::Text(o) => Evicted {
                namespace: o.namespace,
                name: o.name,
                created: None,
            },
        })
    }
}

impl From<&crate::kube::drain::EvictedPod> for Evicted {
    fn from(p: &crate::kube::drain::EvictedPod) -> Evicted {
        Evicted {
            namespace: p.pod.namespace.clone(),
            name: p.pod.name.clone(),
            created: p.created,
        }
    }
}

/// How many pods a run's drains evicted, and how many of those evictions moved a pod that
/// had moved already: a pod created after the run began (the replacement of one it evicted,
/// or a pod new since), or a name evicted before in the run (a StatefulSet's pod keeps its
/// name).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EvictionCount {
    pub evicted: usize,
    pub moved_again: usize,
}

impl RunRecord {
    /// What the drains of this run (and of the runs it resumed, whose nodes it carries)
    /// evicted, counted from the start of the first of those runs.
    pub fn evictions(&self) -> EvictionCount {
        // Creation times are whole seconds (Kubernetes `Time`): a replacement created in the
        // second the run began (its first drain can come that soon) is already the run's.
        let began = self.chain_started_at.unwrap_or(self.started_at);
        let began = jiff::Timestamp::from_second(began.as_second()).unwrap_or(began);
        let mut all: Vec<&Evicted> = self.nodes.iter().flat_map(|n| &n.evicted).collect();
        // Oldest first: of two evictions of one name, the later one is the move again.
        all.sort_by_key(|e| e.created);
        let mut seen = std::collections::BTreeSet::new();
        let mut count = EvictionCount::default();
        for e in all {
            count.evicted += 1;
            let again = !seen.insert((e.namespace.as_str(), e.name.as_str()));
            if again || e.created.is_some_and(|c| c >= began) {
                count.moved_again += 1;
            }
        }
        count
    }
}

/// A serde enum (a state, a mode, a policy) as its kebab-case name in records.
pub fn enum_text<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// A moment in a record: UTC, written as RFC 3339 with milliseconds.
pub type Time = jiff::Timestamp;

pub fn now() -> Time {
    jiff::Timestamp::now()
}

/// `t` as records and `report` write it: RFC 3339, UTC, milliseconds.
pub fn stamp(t: &Time) -> String {
    static PRINTER: jiff::fmt::temporal::DateTimePrinter =
        jiff::fmt::temporal::DateTimePrinter::new().precision(Some(3));
    PRINTER.timestamp_to_string(t)
}

/// A moment written as RFC 3339 (any offset), as records of every version hold it.
fn parse_time(text: &str) -> Result<Time, String> {
    text.parse::<Time>()
        .map_err(|e| format!("`{text}` is not an RFC 3339 time: {e}"))
}

/// Serde for [`Time`] as [`stamp`] writes it (any RFC 3339 offset reads).
pub(super) mod ms {
    use super::Time;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &Time, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::stamp(t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Time, D::Error> {
        super::parse_time(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

mod opt_ms {
    use super::Time;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &Option<Time>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => super::ms::serialize(t, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Time>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|text| super::parse_time(&text))
            .transpose()
            .map_err(serde::de::Error::custom)
    }
}

pub fn new_run_id() -> String {
    use rand::Rng;
    let suffix: u32 = rand::rng().random_range(0..0xffff);
    format!("{}-{suffix:04x}", now().strftime("%Y%m%dT%H%M%SZ"))
}

/// A record as read from `path`: any version up to [`SCHEMA_VERSION`].
pub(crate) fn parse_record(path: &Path, text: &[u8]) -> Result<RunRecord, JournalError> {
    let perr = |source| JournalError::Parse {
        path: path.to_path_buf(),
        source,
    };
    let value: serde_json::Value = serde_json::from_slice(text).map_err(perr)?;
    if let Some(version) = value.get("schemaVersion").and_then(serde_json::Value::as_u64) {
        if version > u64::from(SCHEMA_VERSION) {
            return Err(JournalError::Newer {
                path: path.to_path_buf(),
                version,
            });
        }
    }
    serde_json::from_value(value).map_err(perr)
}

/// Run records of one journal directory.
#[derive(Debug, Clone)]
pub struct Journal {
    dir: PathBuf,
}

impl Journal {
    pub fn new(dir: impl Into<PathBuf>) -> Journal {
        Journal { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn cluster_dir(&self, key: &str) -> PathBuf {
        self.dir.join(key)
    }

    pub fn path_of(&self, rec: &RunRecord) -> PathBuf {
        self.cluster_dir(&rec.cluster.key).join(format!("{}.json", rec.run_id))
    }

    /// Write durably and atomically: a temp file, fsynced, renamed over the record, then the
    /// directory fsynced. A crash or a power loss leaves the old record or the new one, whole;
    /// a failed write leaves the old one (and no temp file taking space).
    pub fn save(&self, rec: &RunRecord) -> Result<PathBuf, JournalError> {
        use std::io::Write;
        let path = self.path_of(rec);
        let dir = path.parent().expect("record path has a parent").to_path_buf();
        let werr = |source| JournalError::Write {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(&dir).map_err(werr)?;
        let tmp = dir.join(format!(".{}.tmp", rec.run_id));
        let text = serde_json::to_vec_pretty(rec).expect("run record serializes");
        let written = std::fs::File::create(&tmp)
            .and_then(|mut f| {
                f.write_all(&text)?;
                f.sync_all()
            })
            .and_then(|()| std::fs::rename(&tmp, &path));
        if let Err(e) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(werr(e));
        }
        std::fs::File::open(&dir).and_then(|d| d.sync_all()).map_err(werr)?;
        Ok(path)
    }

    /// Every record of a cluster, oldest first. Unreadable files are reported, not skipped silently.
    pub fn runs(&self, key: &str) -> Result<Vec<RunRecord>, JournalError> {
        let dir = self.cluster_dir(key);
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
            Err(source) => return Err(JournalError::Read { path: dir, source }),
        };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        paths.sort();
        paths
            .into_iter()
            .map(|path| {
                let text = std::fs::read(&path).map_err(|source| JournalError::Read {
                    path: path.clone(),
                    source,
                })?;
                parse_record(&path, &text)
            })
            .collect()
    }

    /// The newest record of a cluster (the last run that took the lock), if any.
    pub fn latest(&self, key: &str) -> Result<Option<RunRecord>, JournalError> {
        Ok(self.runs(key)?.pop())
    }

    /// The newest run, if it did not finish (interrupted, failed, or still marked running
    /// because the process was killed) and has nodes left. An older unfinished run is not
    /// one: a newer run (its resume, or a new run) came after it.
    pub fn latest_unfinished(&self, key: &str) -> Result<Option<RunRecord>, JournalError> {
        Ok(self.latest(key)?.filter(RunRecord::unfinished))
    }

    /// When each node was last patched successfully (node → RFC 3339), from every record.
    pub fn last_patched(&self, key: &str) -> Result<std::collections::BTreeMap<String, String>, JournalError> {
        Ok(last_patched(self.runs(key)?))
    }
}

/// When each node was last patched (finished `done`) in these runs.
pub fn last_patched(runs: Vec<RunRecord>) -> std::collections::BTreeMap<String, String> {
    let mut latest: std::collections::BTreeMap<String, Time> = std::collections::BTreeMap::new();
    for run in runs {
        for n in run.nodes {
            if n.state == NodeState::Done {
                if let Some(t) = n.finished_at {
                    let e = latest.entry(n.name).or_insert(t);
                    if t > *e {
                        *e = t;
                    }
                }
            }
        }
    }
    latest.into_iter().map(|(n, t)| (n, stamp(&t))).collect()
}

impl super::ports::RecordStore for Journal {
    fn save(&self, rec: &RunRecord) -> Result<(), JournalError> {
        Journal::save(self, rec).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_written_in_utc_with_milliseconds_and_read_from_any_offset() {
        let mut r = record("c");
        r.started_at = "2026-12-01T23:59:58.123456+01:00".parse().unwrap();
        r.finished_at = None;
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["startedAt"], "2026-12-01T22:59:58.123Z");
        assert!(v.get("finishedAt").is_none());
        let back: RunRecord = serde_json::from_value(v).unwrap();
        assert_eq!(stamp(&back.started_at), "2026-12-01T22:59:58.123Z");
        // Every RFC 3339 form earlier versions (and hand edits) wrote still reads.
        for (written, read) in [
            ("2026-12-01T22:59:58Z", "2026-12-01T22:59:58.000Z"),
            ("2026-12-01T22:59:58.123456789Z", "2026-12-01T22:59:58.123Z"),
            ("2026-12-01T17:59:58.5-05:00", "2026-12-01T22:59:58.500Z"),
            ("2026-12-01T22:59:58.123+00:00", "2026-12-01T22:59:58.123Z"),
        ] {
            let mut v = serde_json::to_value(&r).unwrap();
            v["startedAt"] = written.into();
            let back: RunRecord = serde_json::from_value(v).unwrap();
            assert_eq!(stamp(&back.started_at), read, "{written}");
        }
        for bad in ["not a time", "2026-12-01T22:59:58", "2026-12-01"] {
            let mut v = serde_json::to_value(&r).unwrap();
            v["startedAt"] = bad.into();
            assert!(serde_json::from_value::<RunRecord>(v).is_err(), "{bad}");
        }
    }

    #[test]
    fn object_refs_are_objects_and_the_old_strings_still_read() {
        let o = ObjectRef::new("shop", "storefront-pdb");
        assert_eq!(
            serde_json::to_value(&o).unwrap(),
            serde_json::json!({"namespace": "shop", "name": "storefront-pdb"})
        );
        assert_eq!(
            serde_json::from_str::<ObjectRef>(r#""shop/storefront-pdb""#).unwrap(),
            o
        );
        assert_eq!(o.to_string(), "shop/storefront-pdb");
        assert!(serde_json::from_str::<ObjectRef>(r#""no-slash""#).is_err());
    }

    #[test]
    fn evicted_pods_keep_their_creation_time_and_the_old_strings_still_read() {
        let e = Evicted {
            namespace: "shop".into(),
            name: "web-1".into(),
            created: Some("2026-12-01T08:00:00Z".parse().unwrap()),
        };
        let text = serde_json::to_string(&e).unwrap();
        assert_eq!(
            text,
            r#"{"namespace":"shop","name":"web-1","created":"2026-12-01T08:00:00.000Z"}"#
        );
        assert_eq!(serde_json::from_str::<Evicted>(&text).unwrap(), e);
        let old: Evicted = serde_json::from_str(r#""shop/web-1""#).unwrap();
        assert_eq!(
            (old.namespace.as_str(), old.name.as_str(), old.created),
            ("shop", "web-1", None)
        );
    }

    #[test]
    fn a_pod_counts_as_moved_again_when_created_during_the_run_or_its_name_was_evicted_before() {
        let mut rec = record("c");
        rec.started_at = "2026-12-07T01:00:00Z".parse().unwrap();
        let pod = |name: &str, created: Option<&str>| Evicted {
            namespace: "shop".into(),
            name: name.into(),
            created: created.map(|t| t.parse().unwrap()),
        };
        let before = Some("2026-12-01T08:00:00Z");
        // n1: two pods there before the run; n2: the replacement of web-a (a new name,
        // created during the run), db-0 again (a StatefulSet's pod keeps its name), and a
        // pod there before the run.
        rec.nodes[0].evicted = vec![pod("web-a", before), pod("db-0", before)];
        rec.nodes[1].evicted = vec![
            pod("web-x", Some("2026-12-07T01:05:00Z")),
            pod("db-0", Some("2026-12-07T01:06:00Z")),
            pod("cache", before),
        ];
        assert_eq!(
            rec.evictions(),
            EvictionCount {
                evicted: 5,
                moved_again: 2
            }
        );
        // Resumed later: the pods created since the interrupted run began still count.
        rec.chain_started_at = Some(rec.started_at);
        rec.started_at = "2026-12-07T02:00:00Z".parse().unwrap();
        assert_eq!(rec.evictions().moved_again, 2);
        rec.nodes[1].evicted.clear();
        assert_eq!(rec.evictions().moved_again, 0);
    }

    #[test]
    fn a_replacement_created_in_the_second_the_run_began_counts_as_moved_again() {
        let mut rec = record("c");
        rec.started_at = "2026-12-07T01:00:00.700Z".parse().unwrap();
        let pod = |name: &str, created: &str| Evicted {
            namespace: "app".into(),
            name: name.into(),
            created: Some(created.parse().unwrap()),
        };
        // Its creation time, in whole seconds, reads before the run's start in milliseconds.
        rec.nodes[0].evicted = vec![pod("web-a", "2026-12-07T00:59:59Z")];
        rec.nodes[1].evicted = vec![pod("web-b", "2026-12-07T01:00:00Z")];
        assert_eq!(
            rec.evictions(),
            EvictionCount {
                evicted: 2,
                moved_again: 1
            }
        );
    }

    #[test]
    fn options_of_records_written_by_0_1_0_still_read() {
        let o: RunOptions = serde_json::from_str(
            r#"{"upgradeMode":"security","reboot":"ifrequired","deleteEmptydirData":true,"force":false,"gracePeriod":null,"drainTimeout":60,"rebootTimeout":90,"soak":0}"#,
        )
        .unwrap();
        assert_eq!(o.upgrade_mode, UpgradeMode::Security);
        assert_eq!(o.reboot, RebootPolicy::IfRequired);
        assert_eq!(serde_json::to_value(o).unwrap()["reboot"], "if-required");
    }

    fn record(key_name: &str) -> RunRecord {
        RunRecord {
            schema_version: SCHEMA_VERSION,
            run_id: new_run_id(),
            cluster: ClusterRef::arm("sub", "rg", key_name),
            status: RunStatus::Running,
            started_at: now(),
            finished_at: None,
            holder: "me@host pid 1".into(),
            options: RunOptions {
                max_unavailable: None,
                across_zones: false,
                upgrade_mode: UpgradeMode::All,
                reboot: RebootPolicy::IfRequired,
                delete_emptydir_data: false,
                force: false,
                grace_period: None,
                drain_timeout: 600,
                reboot_timeout: 900,
                soak: 0,
                azure_linux_security_as_all: false,
                allow_azure_linux_2: false,
                allow_pending_pods: false,
                no_pending_taint: false,
                health_wait: 600,
                selection: Selection::default(),
                window: WindowOptions::default(),
                blockers: BlockerOptions::default(),
                transport: TransportOptions::default(),
                notify: NotifyOptions::default(),
            },
            nodes: vec![NodeRecord::new("n1", "p"), NodeRecord::new("n2", "p")],
            error: None,
            resumed_from: vec![],
            chain_started_at: None,
        }
    }

    #[test]
    fn save_and_find_unfinished_and_last_patched() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::new(dir.path());
        let mut r = record("c");
        j.save(&r).unwrap();
        assert_eq!(j.latest_unfinished(&r.cluster.key).unwrap().unwrap().run_id, r.run_id);
        r.nodes[0].state = NodeState::Done;
        r.nodes[0].finished_at = Some("2026-11-27T10:00:00.000Z".parse().unwrap());
        r.nodes[1].state = NodeState::Skipped;
        r.status = RunStatus::Succeeded;
        j.save(&r).unwrap();
        assert!(j.latest_unfinished(&r.cluster.key).unwrap().is_none());
        let lp = j.last_patched(&r.cluster.key).unwrap();
        assert_eq!(lp.get("n1").map(String::as_str), Some("2026-11-27T10:00:00.000Z"));
        assert!(!lp.contains_key("n2"));
        // No leftover temp files.
        let names: Vec<_> = std::fs::read_dir(dir.path().join(&r.cluster.key)).unwrap().collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn records_carry_a_schema_version_older_ones_read_and_newer_ones_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::new(dir.path());
        let r = record("c");
        let path = j.save(&r).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(v["schemaVersion"], SCHEMA_VERSION);
        assert_eq!(v["options"]["window"]["timeZone"], "UTC");
        // A record written before the schema version existed (and its options before the
        // window, blockers... were kept) still reads, as version 1.
        let mut old = v.clone();
        old.as_object_mut().unwrap().remove("schemaVersion");
        let o = old["options"].as_object_mut().unwrap();
        for k in ["healthWait", "selection", "window", "blockers", "transport", "notify"] {
            o.remove(k);
        }
        std::fs::write(&path, serde_json::to_vec(&old).unwrap()).unwrap();
        let back = j.latest(&r.cluster.key).unwrap().unwrap();
        assert_eq!(back.schema_version, 1);
        assert_eq!(back.run_id, r.run_id);
        assert_eq!(back.options.upgrade_mode, UpgradeMode::All);
        // One of a newer aks-patch is refused, naming the file and the version.
        let mut newer = v;
        newer["schemaVersion"] = (SCHEMA_VERSION + 1).into();
        std::fs::write(&path, serde_json::to_vec(&newer).unwrap()).unwrap();
        let e = j.latest(&r.cluster.key).unwrap_err();
        assert!(matches!(e, JournalError::Newer { .. }), "{e:?}");
        let text = e.to_string();
        assert!(
            text.contains(&path.display().to_string())
                && text.contains(&format!("schema version {}", SCHEMA_VERSION + 1))
                && text.contains("upgrade aks-patch"),
            "{text}"
        );
    }

    #[test]
    fn a_failed_write_names_the_record_and_its_cause_and_leaves_the_last_record_whole() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::new(dir.path());
        let mut r = record("c");
        let path = j.save(&r).unwrap();
        let before = std::fs::read(&path).unwrap();
        // The temp file cannot be created: a directory is in its place.
        std::fs::create_dir(path.parent().unwrap().join(format!(".{}.tmp", r.run_id))).unwrap();
        r.nodes[0].state = NodeState::Done;
        let e = j.save(&r).unwrap_err();
        assert!(matches!(e, JournalError::Write { .. }), "{e:?}");
        assert_eq!(e.location(), path.display().to_string());
        assert!(e.to_string().contains(&path.display().to_string()), "{e}");
        assert!(!e.cause().is_empty());
        assert_eq!(std::fs::read(&path).unwrap(), before, "the last record stays whole");
    }

    #[test]
    fn the_newest_run_is_the_one_to_resume_not_an_older_one_it_superseded() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::new(dir.path());
        let mut old = record("c");
        old.run_id = "20261201T000000Z-0001".into();
        old.status = RunStatus::Interrupted;
        j.save(&old).unwrap();
        let mut new = record("c");
        new.run_id = "20261201T010000Z-0002".into();
        new.status = RunStatus::Succeeded;
        for n in &mut new.nodes {
            n.state = NodeState::Done;
        }
        j.save(&new).unwrap();
        assert_eq!(j.latest(&new.cluster.key).unwrap().unwrap().run_id, new.run_id);
        assert!(j.latest_unfinished(&new.cluster.key).unwrap().is_none());
    }

    #[test]
    fn corrupt_record_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::new(dir.path());
        let key = ClusterRef::arm("s", "r", "c").key;
        std::fs::create_dir_all(dir.path().join(&key)).unwrap();
        std::fs::write(dir.path().join(&key).join("x.json"), "{").unwrap();
        let e = j.runs(&key).unwrap_err();
        assert!(e.to_string().contains("x.json"), "{e}");
    }
}
