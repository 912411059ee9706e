//! The engine against fakes of the cluster, the nodes and the lock, on paused tokio time:
//! every transition, failures at every step, resume from every state, signals at the
//! safe points. The fakes keep one small world and check "never two nodes out" on every
//! change; the tests assert what the engine's caller checks: the record's states, the
//! typed stop, what was told, and what happened to the nodes. By theme: a node's turn as it
//! should go ([`turns`]), failures ([`failures`]), signals and a lost lock ([`signals`]),
//! resume ([`resume`]), the proof ([`proof`]), windows and blockers ([`window_blockers`]).

use super::*;
use crate::kube::drain::{DrainEvent, DrainReport, EvictedPod, PodRef};
use crate::kube::nodes::{AddressKind, NodeAddress, OsType, Readiness};
use crate::kube::reboot::RebootEvent;
use crate::node::{PackageManager, PendingUpdate, Probe};
use crate::rollout::blockers::BlockerSource;
use crate::rollout::gate::{Blocker, GateStop};
use crate::rollout::journal::{
    enum_text, Journal, NodeRecord, NodeState, RebootPolicy, RunStatus, StepName, StepOutcome, UpgradeMode,
};
use crate::rollout::ports::{DrainStop, FenceError, PortError};
use crate::rollout::progress::{Event, NodeStep};
use crate::rollout::proof::NoProof;
use crate::rollout::stop::{NodeLeft, Release};
use crate::rollout::window::PausedClock;
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use tokio::time::Instant;

mod batches;
mod failures;
mod pending_taint;
mod proof;
mod resume;
mod signals;
mod turns;
mod window_blockers;

const OLD: &str = "5.15.0-1068-azure";
const NEW: &str = "5.15.0-1073-azure";

#[derive(Debug, Clone)]
struct FakeNode {
    ready: bool,
    unschedulable: bool,
    marked: Option<String>,
    boot: u32,
    kernel: String,
    pending: Vec<&'static str>,
    reboot_required: bool,
    /// The next boot never completes.
    never_returns: bool,
    /// Seconds the next boot takes (to a new bootID), and from there to Ready.
    boot_secs: u64,
    ready_secs: u64,
    upgrading_until: Option<Instant>,
    /// Azure Linux (tdnf) instead of Ubuntu (apt); `mariner`: its 2.0.
    tdnf: bool,
    mariner: bool,
    /// The reboot does not clear the need (the old kernel boots again).
    reboot_need_stays: bool,
    /// Probes fail as an SSH connection refused would.
    probe_down: bool,
    /// The node's transport goes down when it is rebooted (`probe_down` from then on).
    down_after_reboot: bool,
    /// The pending taint, with the run id it names.
    tainted: Option<String>,
    /// Its pool and availability zone (labels).
    pool: String,
    zone: Option<String>,
    /// Its upgrades exit with this code rather than the world's `apt_exit`.
    apt_exit: Option<i32>,
    /// Seconds its upgrade takes.
    upgrade_secs: u64,
}

impl FakeNode {
    fn new() -> FakeNode {
        FakeNode {
            ready: true,
            unschedulable: false,
            marked: None,
            boot: 1,
            kernel: OLD.into(),
            pending: vec!["linux-azure", "openssl"],
            reboot_required: false,
            never_returns: false,
            boot_secs: 20,
            ready_secs: 5,
            upgrading_until: None,
            tdnf: false,
            mariner: false,
            reboot_need_stays: false,
            probe_down: false,
            down_after_reboot: false,
            tainted: None,
            pool: "p".into(),
            zone: None,
            apt_exit: None,
            upgrade_secs: 5,
        }
    }
}

#[derive(Default)]
struct World {
    nodes: BTreeMap<String, FakeNode>,
    /// The pods and PDBs the cluster's snapshot lists (for batches).
    pods: Vec<k8s_openapi::api::core::v1::Pod>,
    pdbs: Vec<k8s_openapi::api::policy::v1::PodDisruptionBudget>,
    log: Vec<String>,
    /// The most nodes out of service at once (cordoned by us, marked, or not Ready).
    max_out: usize,
    /// The most nodes of each pool out of service at once.
    max_out_of_pool: BTreeMap<String, usize>,
    /// `step` → the error it fails with (once each).
    fail: BTreeMap<&'static str, PortError>,
    /// Upgrades exit with this code.
    apt_exit: i32,
    /// Upgrades leave these packages pending.
    apt_leaves: Vec<&'static str>,
    /// Probes of a node while it was not Ready.
    probed_not_ready: usize,
    /// Set the cancel token when this step is reached.
    cancel_at: Option<(&'static str, CancellationToken)>,
    /// Set the cancel token when this step is reached on this node (`await n2`).
    cancel_on: Option<(String, CancellationToken)>,
    fence_fails_at: Option<&'static str>,
    lost: Option<String>,
    /// The upgrade commands started, with their node.
    commands: Vec<(String, String)>,
    /// Pods that a drain of the node would leave with nowhere to go.
    stranded: BTreeMap<String, Vec<crate::kube::schedule::Stranded>>,
    /// At this step of this node, the journal's directory (the path) is replaced by a
    /// file: every later write of the run record fails, as on a full or broken disk.
    break_journal_at: Option<(&'static str, &'static str, std::path::PathBuf)>,
    /// At each cordon: the node cordoned, and the nodes that carried the pending taint then
    /// (`node=run id`).
    tainted_at_cordon: Vec<(String, Vec<String>)>,
}

#[derive(Clone, Default)]
struct Fakes(Arc<Mutex<World>>);

impl Fakes {
    fn with_nodes(n: usize) -> Fakes {
        let f = Fakes::default();
        for i in 0..n {
            f.0.lock().unwrap().nodes.insert(format!("n{i}"), FakeNode::new());
        }
        f
    }

    fn w(&self) -> std::sync::MutexGuard<'_, World> {
        self.0.lock().unwrap()
    }

    fn node(&self, name: &str) -> FakeNode {
        self.w().nodes[name].clone()
    }

    fn edit(&self, name: &str, f: impl FnOnce(&mut FakeNode)) {
        let mut w = self.w();
        f(w.nodes.get_mut(name).unwrap());
        let out: Vec<String> = w
            .nodes
            .values()
            .filter(|n| !n.ready || n.marked.is_some())
            .map(|n| n.pool.clone())
            .collect();
        w.max_out = w.max_out.max(out.len());
        for pool in &out {
            let k = out.iter().filter(|p| *p == pool).count();
            let max = w.max_out_of_pool.entry(pool.clone()).or_default();
            *max = (*max).max(k);
        }
    }

    /// Record `what`; fail if that step is scripted to.
    fn step(&self, what: &'static str, node: &str) -> Result<(), PortError> {
        if std::env::var_os("ENGINE_TEST_TRACE").is_some() {
            eprintln!("step {what} {node}");
        }
        let mut w = self.w();
        w.log.push(format!("{what} {node}"));
        if let Some((at, n, dir)) = &w.break_journal_at {
            if *at == what && *n == node {
                std::fs::rename(dir, dir.with_extension("moved")).unwrap();
                std::fs::write(dir, b"").unwrap();
            }
        }
        if w.fence_fails_at == Some(what) {
            // The lock is lost at this step (deleted, taken over): from now on.
            w.lost = Some("the Lease was deleted by someone else".into());
        }
        if let Some((at, tok)) = &w.cancel_at {
            if *at == what {
                tok.cancel();
            }
        }
        if let Some((at, tok)) = &w.cancel_on {
            if *at == format!("{what} {node}") {
                tok.cancel();
            }
        }
        match w.fail.remove(what) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn log(&self) -> Vec<String> {
        self.w().log.clone()
    }

    /// The nodes that carry the pending taint now, as `node=run id`.
    fn tainted(&self) -> Vec<String> {
        self.w()
            .nodes
            .iter()
            .filter_map(|(name, n)| n.tainted.as_ref().map(|run| format!("{name}={run}")))
            .collect()
    }

    fn count(&self, what: &str) -> usize {
        self.log().iter().filter(|l| l.starts_with(&format!("{what} "))).count()
    }

    fn row(&self, name: &str) -> NodeInfo {
        let n = self.node(name);
        NodeInfo {
            name: name.into(),
            readiness: if n.ready { Readiness::Ready } else { Readiness::NotReady },
            unschedulable: n.unschedulable,
            kubelet_version: Some("v1.31.5".into()),
            kernel_version: Some(n.kernel.clone()),
            addresses: vec![NodeAddress {
                kind: AddressKind::InternalIp,
                address: format!("10.0.0.{}", name.trim_start_matches('n')),
            }],
            pool: Some(n.pool.clone()),
            os_type: Some(OsType::Linux),
            os_sku: Some(if n.tdnf { "AzureLinux" } else { "Ubuntu" }.into()),
            boot_id: Some(format!("boot-{}", n.boot)),
            in_progress: n.marked.clone(),
            ..Default::default()
        }
    }
}

/// The fake node as the API server would list it.
fn fake_node_object(name: &str, n: &FakeNode) -> k8s_openapi::api::core::v1::Node {
    use k8s_openapi::api::core::v1::{Node, NodeCondition, NodeSpec, NodeStatus};
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
    let mut labels = BTreeMap::from([("kubernetes.azure.com/agentpool".to_string(), n.pool.clone())]);
    if let Some(z) = &n.zone {
        labels.insert("topology.kubernetes.io/zone".into(), z.clone());
    }
    let annotations = n
        .marked
        .as_ref()
        .map(|run| BTreeMap::from([(crate::kube::drain::IN_PROGRESS_ANNOTATION.to_string(), run.clone())]));
    Node {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some(name.into()),
            labels: Some(labels),
            annotations,
            ..Default::default()
        },
        spec: Some(NodeSpec {
            unschedulable: Some(n.unschedulable),
            ..Default::default()
        }),
        status: Some(NodeStatus {
            allocatable: Some(BTreeMap::from([
                ("cpu".to_string(), Quantity("4".into())),
                ("memory".to_string(), Quantity("16Gi".into())),
                ("pods".to_string(), Quantity("110".into())),
            ])),
            conditions: Some(vec![NodeCondition {
                type_: "Ready".into(),
                status: if n.ready { "True" } else { "False" }.into(),
                ..Default::default()
            }]),
            ..Default::default()
        }),
    }
}

#[async_trait]
impl Cluster for Fakes {
    async fn node(&self, name: &str) -> Result<Option<NodeInfo>, PortError> {
        self.step("get", name)?;
        let exists = self.w().nodes.contains_key(name);
        Ok(exists.then(|| self.row(name)))
    }

    async fn snapshot(&self) -> Result<crate::kube::snapshot::ClusterSnapshot, PortError> {
        self.step("snapshot", "")?;
        let w = self.w();
        let nodes = w.nodes.iter().map(|(name, n)| fake_node_object(name, n)).collect();
        Ok(crate::kube::snapshot::ClusterSnapshot {
            nodes,
            pods: w.pods.clone(),
            pdbs: w.pdbs.clone(),
        })
    }

    async fn blockers(&self, exempt: &[String], _w: &[WorkloadRef]) -> Result<Vec<Blocker>, PortError> {
        self.step("gate", exempt.first().map(String::as_str).unwrap_or(""))?;
        let w = self.w();
        Ok(w.nodes
            .iter()
            .filter(|(name, _)| !exempt.contains(name))
            .filter_map(|(name, n)| match (&n.marked, n.ready) {
                (Some(run), ready) => Some(Blocker::NodeInProgress {
                    node: name.clone(),
                    run_id: run.clone(),
                    ready,
                }),
                (None, false) => Some(Blocker::NodeDown {
                    node: name.clone(),
                    why: "NotReady".into(),
                }),
                _ => None,
            })
            .collect())
    }

    async fn stranded_pods(
        &self,
        node: &str,
        _opts: &DrainOptions,
    ) -> Result<Vec<crate::kube::schedule::Stranded>, PortError> {
        Ok(self.w().stranded.get(node).cloned().unwrap_or_default())
    }

    async fn cordon(&self, node: &str, run_id: &str) -> Result<(), PortError> {
        self.step("cordon", node)?;
        let tainted = self.tainted();
        self.w().tainted_at_cordon.push((node.to_string(), tainted));
        self.edit(node, |n| {
            n.unschedulable = true;
            n.marked = Some(run_id.into());
        });
        Ok(())
    }

    async fn release(&self, node: &str, uncordon: bool) -> Result<(), PortError> {
        self.step("release", node)?;
        self.edit(node, |n| {
            n.marked = None;
            if uncordon {
                n.unschedulable = false;
            }
        });
        Ok(())
    }

    async fn drain(
        &self,
        node: &str,
        _opts: &DrainOptions,
        _progress: &(dyn Fn(DrainEvent) + Send + Sync),
        cancel: &CancellationToken,
        fence: &dyn Fence,
    ) -> Result<DrainReport, DrainStop> {
        self.step("drain", node).map_err(DrainStop::Failed)?;
        fence.fence(Duration::from_secs(2)).await.map_err(DrainStop::Fenced)?;
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(3)) => {}
            _ = cancel.cancelled() => return Err(DrainStop::Cancelled),
        }
        Ok(DrainReport {
            node: node.into(),
            evicted: vec![EvictedPod {
                pod: PodRef {
                    namespace: "app".into(),
                    name: format!("web-{node}"),
                    uid: "u".into(),
                },
                created: Some("2026-12-01T08:00:00Z".parse().unwrap()),
            }],
            skipped: vec![],
            warnings: vec![],
            pdbs: vec![ObjectRef::new("app", "web-pdb")],
            workloads: vec![],
            elapsed: Duration::from_secs(3),
        })
    }

    async fn wait_for_reboot(
        &self,
        node: &str,
        old_boot_id: &str,
        timeout: Duration,
        progress: &(dyn Fn(RebootEvent) + Send + Sync),
    ) -> Result<NodeInfo, PortError> {
        self.step("wait", node)?;
        let deadline = Instant::now() + timeout;
        let mut told = false;
        loop {
            let row = self.row(node);
            let booted = row.boot_id.as_deref() != Some(old_boot_id);
            if booted && !told {
                told = true;
                progress(RebootEvent::Booted {
                    boot_id: row.boot_id.clone().unwrap_or_default(),
                });
            }
            if row.is_ready() && booted {
                return Ok(row);
            }
            if Instant::now() >= deadline {
                return Err(PortError::new(format!(
                    "node {node} did not come back within {}s",
                    timeout.as_secs()
                )));
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    async fn wait_pdbs(&self, _pdbs: &[ObjectRef], _timeout: Duration) -> Result<(), PortError> {
        self.step("pdbs", "")
    }

    async fn mark_pending(&self, nodes: &[String], run_id: &str) -> Result<(), PortError> {
        let mut first = None;
        for node in nodes {
            match self.step("taint", node) {
                Ok(()) if self.w().nodes.contains_key(node) => {
                    self.edit(node, |n| n.tainted = Some(run_id.to_string()))
                }
                Ok(()) => {}
                Err(e) => {
                    first.get_or_insert(e);
                }
            }
        }
        first.map_or(Ok(()), Err)
    }

    async fn clear_pending(&self, nodes: &[String]) -> Result<(), PortError> {
        let mut first = None;
        for node in nodes {
            match self.step("untaint", node) {
                Ok(()) if self.w().nodes.contains_key(node) => self.edit(node, |n| n.tainted = None),
                Ok(()) => {}
                Err(e) => {
                    first.get_or_insert(e);
                }
            }
        }
        first.map_or(Ok(()), Err)
    }

    async fn take_kured_lock(&self, node: &str, _ttl: Duration) -> Result<bool, PortError> {
        self.step("kured", node).map(|_| false)
    }

    async fn release_kured_lock(&self, _node: &str) -> Result<(), PortError> {
        Ok(())
    }
}

#[async_trait]
impl Transport for Fakes {
    async fn probe(&self, node: &NodeTarget) -> Result<Probe, PortError> {
        self.step("probe", &node.name)?;
        let n = self.node(&node.name);
        if n.probe_down {
            return Err(PortError::new(format!(
                "ssh: connect to host {} port 22: Connection refused",
                node.address
            )));
        }
        if !n.ready {
            self.w().probed_not_ready += 1;
        }
        Ok(Probe {
            running_kernel: n.kernel.clone(),
            os_id: match (n.tdnf, n.mariner) {
                (true, true) => "mariner",
                (true, false) => "azurelinux",
                _ => "ubuntu",
            }
            .into(),
            os_version: "22.04".into(),
            os_pretty_name: None,
            boot_id: Some(format!("boot-{}", n.boot)),
            booted_at: None,
            uptime_seconds: None,
            package_manager: if n.tdnf {
                PackageManager::Tdnf
            } else {
                PackageManager::Apt
            },
            pending: n
                .pending
                .iter()
                .map(|p| PendingUpdate {
                    name: p.to_string(),
                    from: "1".into(),
                    to: "2".into(),
                    pockets: vec!["jammy-security".into()],
                    arch: "amd64".into(),
                    security: !n.tdnf,
                })
                .collect(),
            reboot_required: n.reboot_required,
            reboot_packages: if n.reboot_required {
                vec!["linux-image-5.15.0-1073-azure".into()]
            } else {
                vec![]
            },
            refreshed: false,
            refresh_error: None,
            unsupported: None,
            end_of_support: n.mariner.then(|| "Azure Linux 2.0 is out of support".to_string()),
            needs_restarting: n.tdnf && n.reboot_required,
        })
    }

    async fn start_upgrade(&self, node: &NodeTarget, command: &str, _run_id: &str) -> Result<(), PortError> {
        self.step("upgrade", &node.name)?;
        self.w().commands.push((node.name.clone(), command.to_string()));
        self.edit(&node.name, |n| {
            n.upgrading_until = Some(Instant::now() + Duration::from_secs(n.upgrade_secs))
        });
        Ok(())
    }

    async fn wait_upgrade(
        &self,
        node: &NodeTarget,
        _run_id: &str,
        max: Duration,
    ) -> Result<Option<(String, i32)>, PortError> {
        self.step("await", &node.name)?;
        let until = self.node(&node.name).upgrading_until.expect("an upgrade was started");
        let now = Instant::now();
        if until > now + max {
            tokio::time::sleep(max).await;
            return Ok(None);
        }
        tokio::time::sleep_until(until).await;
        let (code, leaves) = {
            let w = self.w();
            (w.apt_exit, w.apt_leaves.clone())
        };
        let code = self.node(&node.name).apt_exit.unwrap_or(code);
        let tdnf = self.node(&node.name).tdnf;
        if code != 0 {
            let log = if tdnf {
                "Error(1622) : Unable to download packages"
            } else {
                "E: Sub-process /usr/bin/dpkg returned an error code (1)"
            };
            return Ok(Some((log.into(), code)));
        }
        self.edit(&node.name, |n| {
            n.upgrading_until = None;
            if n.pending.contains(&"linux-azure") {
                n.reboot_required = true;
            }
            n.pending = leaves.clone();
        });
        if tdnf {
            return Ok(Some((
                format!("Upgrading:\nkernel x86_64 {NEW} azurelinux-official-base 1.02M\nopenssl x86_64 3.3.3-1.azl3 azurelinux-official-base 1.02M\n\nComplete!"),
                0,
            )));
        }
        Ok(Some((
            format!("Setting up linux-image-{NEW} ({NEW}) ...\nSetting up openssl (3.0.2) ..."),
            0,
        )))
    }

    async fn reboot(&self, node: &NodeTarget) -> Result<(), PortError> {
        self.step("reboot", &node.name)?;
        self.edit(&node.name, |n| {
            n.ready = false;
            n.probe_down |= n.down_after_reboot;
        });
        let me = self.clone();
        let name = node.name.clone();
        let (secs, ready_secs, never) = {
            let n = self.node(&name);
            (n.boot_secs, n.ready_secs, n.never_returns)
        };
        if !never {
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(secs)).await;
                me.edit(&name, |n| {
                    n.boot += 1;
                    n.kernel = NEW.into();
                    n.reboot_required = n.reboot_need_stays;
                });
                tokio::time::sleep(Duration::from_secs(ready_secs)).await;
                me.edit(&name, |n| n.ready = true);
            });
        }
        Ok(())
    }

    async fn prefetch(&self, node: &NodeTarget, _command: &str) -> Result<(), PortError> {
        self.step("prefetch", &node.name)?;
        tokio::time::sleep(Duration::from_secs(3)).await;
        Ok(())
    }

    async fn disconnect(&self, _node: &NodeTarget) {}
}

#[async_trait]
impl Fence for Fakes {
    async fn fence(&self, _max_age: Duration) -> Result<(), FenceError> {
        let w = self.w();
        match &w.lost {
            Some(r) => Err(crate::kube::LockError::Lost {
                lease: "kube-system/aks-patch".into(),
                reason: r.clone(),
            }
            .into()),
            None => Ok(()),
        }
    }

    fn lost_reason(&self) -> Option<String> {
        self.w().lost.clone()
    }

    fn auth_failed(&self) -> bool {
        false
    }
}

fn options() -> RunOptions {
    RunOptions {
        max_unavailable: None,
        across_zones: false,
        upgrade_mode: UpgradeMode::All,
        reboot: RebootPolicy::IfRequired,
        delete_emptydir_data: true,
        force: true,
        grace_period: None,
        drain_timeout: 600,
        reboot_timeout: 300,
        soak: 0,
        azure_linux_security_as_all: false,
        allow_azure_linux_2: false,
        allow_pending_pods: false,
        no_pending_taint: false,
        health_wait: 600,
        selection: Default::default(),
        window: Default::default(),
        blockers: Default::default(),
        transport: Default::default(),
        notify: Default::default(),
    }
}

fn record(n: usize) -> RunRecord {
    RunRecord {
        schema_version: journal::SCHEMA_VERSION,
        run_id: "run-1".into(),
        cluster: crate::rollout::journal::ClusterRef::kubeconfig("ctx", "https://x"),
        status: RunStatus::Running,
        started_at: journal::now(),
        finished_at: None,
        holder: "me".into(),
        options: options(),
        nodes: (0..n).map(|i| NodeRecord::new(&format!("n{i}"), "p")).collect(),
        error: None,
        resumed_from: vec![],
        chain_started_at: None,
    }
}

struct Harness {
    fakes: Fakes,
    dir: tempfile::TempDir,
    cancel: CancellationToken,
    abandon: CancellationToken,
    options: RunOptions,
    window: Option<WindowPolicy>,
    blockers: Option<BlockerPolicy>,
    /// `with_hold_others` with a refusal of this text.
    hold: Option<&'static str>,
    /// `--max-unavailable` (`None`: one at a time).
    batches: Option<crate::rollout::batches::BatchRules>,
    /// What the engine told, in order.
    told: Told,
}

/// A progress port that keeps what it is told.
#[derive(Clone, Default)]
struct Told(Arc<Mutex<Vec<Event>>>);

impl Progress for Told {
    fn tell(&self, event: Event) {
        self.0.lock().unwrap().push(event);
    }
}

impl Told {
    /// The steps told about `node`, in order.
    fn steps(&self, node: &str) -> Vec<NodeStep> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter_map(|e| match e {
                Event::Step { node: n, step } if n == node => Some(step.clone()),
                _ => None,
            })
            .collect()
    }
}

impl Harness {
    fn new(n: usize) -> Harness {
        Harness {
            fakes: Fakes::with_nodes(n),
            dir: tempfile::tempdir().unwrap(),
            cancel: CancellationToken::new(),
            abandon: CancellationToken::new(),
            options: options(),
            window: None,
            blockers: None,
            hold: None,
            batches: None,
            told: Told::default(),
        }
    }

    async fn run(&self, rec: &mut RunRecord) -> Result<(), RunStop> {
        let journal = Journal::new(self.dir.path());
        // The window's clock when the run keeps to one.
        let clock: Arc<dyn Clock> = match &self.window {
            Some(w) => w.clock.clone(),
            None => Arc::new(PausedClock::at("2026-12-02T12:00:00Z")),
        };
        let mut cfg = EngineConfig::new(
            self.options.clone(),
            DrainOptions::default(),
            rec.run_id.clone(),
            Duration::from_secs(30),
        );
        cfg.gate_poll = Duration::from_secs(1);
        cfg.batches = self.batches.clone();
        let ports = Ports {
            cluster: &self.fakes,
            transport: &self.fakes,
            fence: &self.fakes,
            journal: &journal,
            progress: &self.told,
            clock: clock.as_ref(),
        };
        let signals = Signals {
            cancel: self.cancel.clone(),
            abandon: self.abandon.clone(),
        };
        let mut e = Engine::new(ports, cfg, signals);
        if let Some(w) = &self.window {
            e = e.with_window(w.clone());
        }
        if let Some(b) = &self.blockers {
            e = e.with_blockers(b.clone());
        }
        if let Some(message) = self.hold {
            e = e.with_hold_others(RunStop::Refused(message.into()));
        }
        e.run(rec).await
    }

    fn fail(&self, step: &'static str, e: PortError) {
        self.fakes.w().fail.insert(step, e);
    }
}

/// Whether anything that changes a node (beyond downloading ahead) happened to `node`.
fn changed(f: &Fakes, node: &str) -> bool {
    f.log().iter().any(|l| {
        let (step, n) = l.split_once(' ').unwrap_or((l, ""));
        n == node && ["upgrade", "cordon", "drain", "reboot", "release"].contains(&step)
    })
}

fn states(rec: &RunRecord) -> Vec<NodeState> {
    rec.nodes.iter().map(|n| n.state).collect()
}

/// `step node` lines of the fakes' log.
fn count_on(f: &Fakes, step: &str, node: &str) -> usize {
    let line = format!("{step} {node}");
    f.log().iter().filter(|l| **l == line).count()
}

/// What held the health gate when the run stopped on it.
fn held_by(stop: &RunStop) -> Vec<Blocker> {
    match stop.halt() {
        Some(Halt::Unhealthy {
            gate: GateStop::Blocked { blockers, .. },
            ..
        }) => blockers.clone(),
        other => panic!("not held by the health gate: {other:?}"),
    }
}

fn n2_not_ready() -> Blocker {
    Blocker::NodeDown {
        node: "n2".into(),
        why: "NotReady".into(),
    }
}
