//! The engine against fakes of the cluster, the nodes and the lock, on paused tokio time:
//! every transition, failures at every step, resume from every state, signals at the
//! safe points. The fakes keep one small world and check "never two nodes out" on every
//! change.
use super::*;
use crate::kube::drain::{DrainEvent, DrainReport, PodRef};
use crate::kube::reboot::RebootEvent;
use crate::node::Probe;
use crate::node::{PackageManager, PendingUpdate};
use crate::rollout::blockers::BlockerSource;
use crate::rollout::gate::Blocker;
use crate::rollout::gate::GateStop;
use crate::rollout::journal::{enum_text, Journal, NodeRecord, RunStatus};
use crate::rollout::journal::{NodeState, RebootPolicy, StepName, StepOutcome, UpgradeMode};
use crate::rollout::ports::{DrainStop, PortError};
use crate::rollout::progress::{Event, NodeStep};
use crate::rollout::proof::NoProof;
use crate::rollout::stop::{NodeLeft, Release};
use crate::rollout::window::PausedClock;
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use tokio::time::Instant;

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
        }
    }
}

#[derive(Default)]
struct World {
    nodes: BTreeMap<String, FakeNode>,
    log: Vec<String>,
    /// The most nodes out of service at once (cordoned by us, marked, or not Ready).
    max_out: usize,
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
    fence_fails_at: Option<&'static str>,
    lost: Option<String>,
    /// The upgrade commands started, with their node.
    commands: Vec<(String, String)>,
    /// Pods that a drain of the node would leave with nowhere to go.
    stranded: BTreeMap<String, Vec<crate::kube::schedule::Stranded>>,
    /// At this step of this node, the journal's directory (the path) is replaced by a
    /// file: every later write of the run record fails, as on a full or broken disk.
    break_journal_at: Option<(&'static str, &'static str, std::path::PathBuf)>,
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
        let out = w.nodes.values().filter(|n| !n.ready || n.marked.is_some()).count();
        w.max_out = w.max_out.max(out);
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
        match w.fail.remove(what) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn log(&self) -> Vec<String> {
        self.w().log.clone()
    }

    fn count(&self, what: &str) -> usize {
        self.log().iter().filter(|l| l.starts_with(&format!("{what} "))).count()
    }

    fn row(&self, name: &str) -> NodeRow {
        let n = self.node(name);
        NodeRow {
            name: name.into(),
            status: if n.ready { "Ready" } else { "NotReady" }.into(),
            roles: "<none>".into(),
            age: "1d".into(),
            version: "v1.31.5".into(),
            internal_ip: format!("10.0.0.{}", name.trim_start_matches('n')),
            external_ip: "<none>".into(),
            os_image: "Ubuntu 22.04.5 LTS".into(),
            kernel_version: n.kernel.clone(),
            container_runtime: "containerd://1.7".into(),
            pool: Some("p".into()),
            os_type: Some("linux".into()),
            os_sku: Some(if n.tdnf { "AzureLinux" } else { "Ubuntu" }.into()),
            node_image_version: None,
            unschedulable: n.unschedulable,
            ready: n.ready,
            boot_id: Some(format!("boot-{}", n.boot)),
            created_at: None,
            in_progress: n.marked.clone(),
        }
    }
}

#[async_trait]
impl Cluster for Fakes {
    async fn node(&self, name: &str) -> Result<Option<NodeRow>, PortError> {
        self.step("get", name)?;
        let exists = self.w().nodes.contains_key(name);
        Ok(exists.then(|| self.row(name)))
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
            evicted: vec![PodRef {
                namespace: "app".into(),
                name: format!("web-{node}"),
                uid: "u".into(),
            }],
            skipped: vec![],
            warnings: vec![],
            pdbs: vec![("app".into(), "web-pdb".into())],
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
    ) -> Result<NodeRow, PortError> {
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
            if row.ready && booted {
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

    async fn wait_pdbs(&self, _pdbs: &[(String, String)], _timeout: Duration) -> Result<(), PortError> {
        self.step("pdbs", "")
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
            n.upgrading_until = Some(Instant::now() + Duration::from_secs(5))
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
    async fn fence(&self, _max_age: Duration) -> Result<(), String> {
        let w = self.w();
        match &w.lost {
            Some(r) => Err(format!("the aks-patch lock was lost: {r}")),
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

#[tokio::test(start_paused = true)]
async fn every_node_is_patched_and_rebooted_one_at_a_time() {
    let h = Harness::new(3);
    let mut rec = record(3);
    h.run(&mut rec).await.unwrap();
    assert_eq!(states(&rec), [NodeState::Done; 3]);
    for i in 0..3 {
        let n = h.fakes.node(&format!("n{i}"));
        assert_eq!(n.kernel, NEW);
        assert!(!n.unschedulable && n.marked.is_none());
        assert!(rec.nodes[i].rebooted && !rec.nodes[i].in_hand);
        assert_eq!(rec.nodes[i].kernel_before.as_deref(), Some(OLD));
        assert_eq!(rec.nodes[i].kernel_after.as_deref(), Some(NEW));
        assert_eq!(rec.nodes[i].packages_upgraded.len(), 2);
    }
    assert_eq!(h.fakes.w().max_out, 1, "never two nodes out");
    // The next node's packages are downloaded while the previous one reboots.
    let log = h.fakes.log();
    let at = |l: &str| {
        log.iter()
            .position(|x| x == l)
            .unwrap_or_else(|| panic!("{l} in {log:?}"))
    };
    assert!(at("reboot n0") < at("prefetch n1") && at("prefetch n1") < at("cordon n1"));
    assert_eq!(h.fakes.count("prefetch"), 2, "none after the last node");
    let first: Vec<String> = h.fakes.log().into_iter().filter(|l| l.ends_with(" n0")).collect();
    let names: Vec<&str> = first.iter().map(|l| l.split(' ').next().unwrap()).collect();
    let order = [
        "probe", "upgrade", "gate", "cordon", "drain", "reboot", "wait", "release",
    ];
    let mut at = 0;
    for step in names {
        if at < order.len() && step == order[at] {
            at += 1;
        }
    }
    assert_eq!(at, order.len(), "{first:?}");
}

#[tokio::test(start_paused = true)]
async fn a_record_that_cannot_be_written_finishes_the_node_in_hand_and_starts_no_other() {
    let h = Harness::new(3);
    let mut rec = record(3);
    let dir = h.dir.path().join(&rec.cluster.key);
    h.fakes.w().break_journal_at = Some(("drain", "n0", dir.clone()));
    let stop = h.run(&mut rec).await.unwrap_err();
    let RunStop::RecordUnwritable(msg) = &stop else {
        panic!("{stop:?}")
    };
    let path = dir.join("run-1.json");
    assert!(
        msg.contains(&path.display().to_string())
            && msg.contains("free space")
            && msg.contains("--resume")
            && msg.contains("not starting another node"),
        "{msg}"
    );
    // n0, out of service when the writes began to fail, was finished and put back; the
    // others were not touched.
    assert_eq!(states(&rec), [NodeState::Done, NodeState::Pending, NodeState::Pending]);
    let n0 = h.fakes.node("n0");
    assert!(n0.kernel == NEW && !n0.unschedulable && n0.marked.is_none());
    assert!(rec.nodes[0].rebooted && !rec.nodes[0].in_hand);
    assert!(!changed(&h.fakes, "n1") && !changed(&h.fakes, "n2"));
    // The record on disk is the last one written (n0 cordoned, draining).
    let old = dir.with_extension("moved").join("run-1.json");
    let on_disk: RunRecord = serde_json::from_slice(&std::fs::read(old).unwrap()).unwrap();
    assert!(on_disk.nodes[0].in_hand && on_disk.nodes[0].state == NodeState::Cordoned);
}

#[tokio::test(start_paused = true)]
async fn a_record_that_cannot_be_written_before_a_node_is_changed_stops_before_the_change() {
    let h = Harness::new(2);
    let mut rec = record(2);
    let dir = h.dir.path().join(&rec.cluster.key);
    // The write after the probe fails: the upgrade (a change) is not started.
    h.fakes.w().break_journal_at = Some(("probe", "n0", dir.clone()));
    let stop = h.run(&mut rec).await.unwrap_err();
    assert!(
        matches!(&stop, RunStop::RecordUnwritable(m) if m.starts_with("not upgrading node n0")),
        "{stop:?}"
    );
    assert!(!changed(&h.fakes, "n0") && !changed(&h.fakes, "n1"));
    assert_eq!(states(&rec), [NodeState::Pending; 2], "nothing is recorded as failed");
}

#[tokio::test(start_paused = true)]
async fn the_check_after_a_reboot_runs_while_the_node_gets_ready() {
    let h = Harness::new(2);
    let mut rec = record(2);
    h.run(&mut rec).await.unwrap();
    assert_eq!(states(&rec), [NodeState::Done; 2]);
    // Once each node has its new bootID it is checked, before it is Ready again, and not
    // a second time after: the node is put back the moment it is Ready.
    assert_eq!(h.fakes.w().probed_not_ready, 2);
    assert_eq!(
        h.fakes.count("probe"),
        6,
        "per node: before the upgrade, after it, after the reboot"
    );
    for n in &rec.nodes {
        let verify = n.steps.iter().find(|s| s.name == StepName::Verify).unwrap();
        assert_eq!(verify.outcome, StepOutcome::Ok, "{:?}", verify.detail);
    }
}

#[tokio::test(start_paused = true)]
async fn a_node_that_needs_no_reboot_is_never_cordoned() {
    let h = Harness::new(1);
    h.fakes.edit("n0", |n| n.pending = vec!["openssl"]);
    let mut rec = record(1);
    h.run(&mut rec).await.unwrap();
    assert_eq!(states(&rec), [NodeState::Done]);
    assert_eq!(h.fakes.count("cordon"), 0);
    assert_eq!(h.fakes.count("reboot"), 0);
    assert!(!rec.nodes[0].rebooted);
}

#[tokio::test(start_paused = true)]
async fn a_node_cordoned_by_someone_else_is_patched_and_left_cordoned() {
    let h = Harness::new(1);
    h.fakes.edit("n0", |n| n.unschedulable = true);
    let mut rec = record(1);
    h.run(&mut rec).await.unwrap();
    assert_eq!(states(&rec), [NodeState::Done]);
    assert!(rec.nodes[0].was_cordoned && rec.nodes[0].rebooted);
    let n = h.fakes.node("n0");
    assert!(n.unschedulable && n.marked.is_none(), "unmarked, still cordoned");
    let steps = h.told.steps("n0");
    assert!(
        steps
            .iter()
            .any(|s| matches!(s, NodeStep::Cordoned { cordoned_before: true })),
        "{steps:?}"
    );
    assert!(
        steps
            .iter()
            .any(|s| matches!(s, NodeStep::Released(Release::StaysCordoned { node }) if node == "n0")),
        "{steps:?}"
    );
    assert!(matches!(steps.last(), Some(NodeStep::Done)), "{steps:?}");
}

#[tokio::test(start_paused = true)]
async fn reboot_never_and_always() {
    let mut h = Harness::new(1);
    h.options.reboot = RebootPolicy::Never;
    let mut rec = record(1);
    h.run(&mut rec).await.unwrap();
    assert_eq!(h.fakes.count("reboot"), 0);
    let mut h = Harness::new(1);
    h.options.reboot = RebootPolicy::Always;
    h.fakes.edit("n0", |n| n.pending = vec![]);
    let mut rec = record(1);
    h.run(&mut rec).await.unwrap();
    assert_eq!(
        h.fakes.count("reboot"),
        1,
        "always reboots, even with nothing to install"
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_upgrade_halts_before_the_cordon() {
    let h = Harness::new(2);
    h.fakes.w().apt_exit = 100;
    let mut rec = record(2);
    let stop = h.run(&mut rec).await.unwrap_err();
    assert!(
        matches!(
            stop.halt(),
            Some(Halt::UpgradeExited {
                manager: PackageManager::Apt,
                code: 100,
                left: NodeLeft::NotCordoned,
                ..
            })
        ),
        "{stop:?}"
    );
    assert!(stop.message().contains("(apt-get exit 100"), "{}", stop.message());
    assert_eq!(states(&rec), [NodeState::Failed, NodeState::Pending]);
    assert!(rec.nodes[0].upgrade_output.contains("E: Sub-process"));
    assert_eq!(h.fakes.count("cordon"), 0);
}

#[tokio::test(start_paused = true)]
async fn updates_left_pending_after_the_upgrade_are_never_reported_patched() {
    let h = Harness::new(1);
    h.fakes.w().apt_leaves = vec!["openssl"];
    let mut rec = record(1);
    let stop = h.run(&mut rec).await.unwrap_err();
    assert!(
        matches!(stop.halt(), Some(Halt::StillPending { packages, .. }) if packages == &["openssl"]),
        "{stop:?}"
    );
    assert_eq!(states(&rec), [NodeState::Failed]);
    assert_eq!(h.fakes.count("cordon"), 0);
}

#[tokio::test(start_paused = true)]
async fn each_failing_step_halts_with_the_node_left_as_it_should_be() {
    // (step, node stays out of service afterwards, the port error the halt carries)
    let probe = |h: &Halt| match h {
        Halt::Probe { error, .. } => Some(error.clone()),
        _ => None,
    };
    let upgrade = |h: &Halt| match h {
        Halt::StartUpgrade { error, .. } => Some(error.clone()),
        _ => None,
    };
    let gate = |h: &Halt| match h {
        Halt::Unhealthy {
            gate: GateStop::Failed(error),
            ..
        } => Some(error.clone()),
        _ => None,
    };
    let kured = |h: &Halt| match h {
        Halt::KuredLock { error, .. } => Some(error.clone()),
        _ => None,
    };
    let cordon = |h: &Halt| match h {
        Halt::Cordon { error, .. } => Some(error.clone()),
        _ => None,
    };
    let drain = |h: &Halt| match h {
        Halt::Drain { error, release, .. } if release.put_back() => Some(error.clone()),
        _ => None,
    };
    let reboot = |h: &Halt| match h {
        Halt::Reboot { error, release, .. } if release.put_back() => Some(error.clone()),
        _ => None,
    };
    let wait = |h: &Halt| match h {
        Halt::NotBack { error } => Some(error.clone()),
        _ => None,
    };
    type Cause = fn(&Halt) -> Option<PortError>;
    let steps: [(&str, bool, Cause); 8] = [
        ("probe", false, probe),
        ("upgrade", false, upgrade),
        ("gate", false, gate),
        ("kured", false, kured),
        ("cordon", false, cordon),
        ("drain", false, drain),
        ("reboot", false, reboot),
        ("wait", true, wait),
    ];
    for (step, stays_out, cause) in steps {
        let h = Harness::new(2);
        h.fail(step, PortError::new(format!("{step} broke")));
        let mut rec = record(2);
        let stop = h.run(&mut rec).await.unwrap_err();
        let Some(halt) = stop.halt() else {
            panic!("{step}: {stop:?}")
        };
        assert_eq!(
            cause(halt),
            Some(PortError::new(format!("{step} broke"))),
            "{step}: {halt:?}"
        );
        assert!(!halt.credentials_refused(), "{step}");
        assert_eq!(rec.nodes[0].state, NodeState::Failed, "{step}");
        assert_eq!(
            rec.nodes[1].state,
            NodeState::Pending,
            "{step}: the next node is not started"
        );
        let n0 = h.fakes.node("n0");
        assert_eq!(n0.unschedulable, stays_out, "{step}");
        assert_eq!(rec.nodes[0].in_hand, stays_out, "{step}");
        assert!(!changed(&h.fakes, "n1"), "{step}: nothing happened to the next node");
    }
}

#[tokio::test(start_paused = true)]
async fn refused_credentials_stop_the_run_as_refused_credentials() {
    let h = Harness::new(1);
    h.fail("cordon", PortError::auth("HTTP 401 Unauthorized"));
    let mut rec = record(1);
    let stop = h.run(&mut rec).await.unwrap_err();
    assert!(
        matches!(stop.halt(), Some(h @ Halt::Cordon { .. }) if h.credentials_refused()),
        "{stop:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn another_node_down_holds_the_cordon_then_halts_naming_it() {
    let h = Harness::new(3);
    h.fakes.edit("n2", |n| n.ready = false);
    let mut rec = record(2);
    let stop = h.run(&mut rec).await.unwrap_err();
    assert_eq!(held_by(&stop), [n2_not_ready()], "{stop:?}");
    assert_eq!(h.fakes.count("cordon"), 0);
    assert_eq!(rec.nodes[0].state, NodeState::Failed);
    assert_eq!(h.fakes.w().max_out, 1, "only the node that was down");
}

#[tokio::test(start_paused = true)]
async fn the_gate_opens_when_the_other_node_comes_back() {
    let h = Harness::new(3);
    h.fakes.edit("n2", |n| n.ready = false);
    let f = h.fakes.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(12)).await;
        f.edit("n2", |n| n.ready = true);
    });
    let mut rec = record(2);
    h.run(&mut rec).await.unwrap();
    assert_eq!(states(&rec), [NodeState::Done; 2]);
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

fn stranded_cache() -> crate::kube::schedule::Stranded {
    use crate::kube::schedule::{Constraint, Nowhere, Stranded};
    Stranded {
        pod: PodRef {
            namespace: "shop".into(),
            name: "session-cache-7c9".into(),
            uid: "u".into(),
        },
        why: Nowhere::NoneMatches(vec![Constraint::NodeSelector(
            [("agentpool".to_string(), "user".to_string())].into(),
        )]),
    }
}

#[tokio::test(start_paused = true)]
async fn pods_with_nowhere_to_go_stop_the_run_before_that_nodes_cordon() {
    let h = Harness::new(3);
    h.fakes.w().stranded.insert("n1".into(), vec![stranded_cache()]);
    let mut rec = record(3);
    let stop = h.run(&mut rec).await.unwrap_err();
    let RunStop::Refused(msg) = &stop else {
        panic!("{stop:?}")
    };
    assert!(
        msg.contains("not taking node n1 out: draining node n1 would leave 1 pod(s) with nowhere to go")
            && msg.contains(
                "shop/session-cache-7c9 (no other schedulable Ready node matches nodeSelector agentpool=user)"
            )
            && msg.contains("--allow-pending-pods"),
        "{msg}"
    );
    assert_eq!(states(&rec), [NodeState::Done, NodeState::Failed, NodeState::Pending]);
    assert!(!h.fakes.log().contains(&"cordon n1".to_string()), "n1 never taken out");
    assert!(!h.fakes.node("n1").unschedulable && h.fakes.node("n1").marked.is_none());
    assert!(!changed(&h.fakes, "n2"), "no node after it is started");
}

#[tokio::test(start_paused = true)]
async fn allow_pending_pods_takes_the_node_out_anyway() {
    let mut h = Harness::new(2);
    h.options.allow_pending_pods = true;
    h.fakes.w().stranded.insert("n1".into(), vec![stranded_cache()]);
    let mut rec = record(2);
    h.run(&mut rec).await.unwrap();
    assert_eq!(states(&rec), [NodeState::Done; 2]);
    assert_eq!(h.fakes.count("cordon"), 2);
}

#[tokio::test(start_paused = true)]
async fn a_lock_lost_before_the_cordon_takes_nothing_out() {
    let h = Harness::new(2);
    h.fakes.w().fence_fails_at = Some("kured");
    let mut rec = record(2);
    let stop = h.run(&mut rec).await.unwrap_err();
    assert!(matches!(stop, RunStop::LockLost(_)), "{stop:?}");
    assert_eq!(h.fakes.count("cordon"), 0);
    assert_eq!(rec.nodes[1].state, NodeState::Pending);
}

#[tokio::test(start_paused = true)]
async fn a_lock_lost_mid_drain_puts_the_node_back_and_stops() {
    let h = Harness::new(2);
    h.fakes.w().fence_fails_at = Some("drain");
    let mut rec = record(2);
    let stop = h.run(&mut rec).await.unwrap_err();
    assert!(
        matches!(stop, RunStop::LockLost(ref m) if m.contains("stopped draining node n0")),
        "{stop:?}"
    );
    let n0 = h.fakes.node("n0");
    assert!(!n0.unschedulable && n0.marked.is_none(), "put back");
    assert_eq!(h.fakes.count("reboot"), 0);
    assert!(!rec.nodes[0].in_hand);
}

#[tokio::test(start_paused = true)]
async fn a_lock_lost_while_rebooting_finishes_the_node_and_starts_no_other() {
    let h = Harness::new(2);
    h.fakes.w().fence_fails_at = Some("wait");
    let mut rec = record(2);
    let stop = h.run(&mut rec).await.unwrap_err();
    assert!(matches!(stop, RunStop::LockLost(_)), "{stop:?}");
    assert_eq!(rec.nodes[0].state, NodeState::Done, "the node in hand was finished");
    assert!(!h.fakes.node("n0").unschedulable);
    assert_eq!(rec.nodes[1].state, NodeState::Pending, "no other node was started");
    assert!(!changed(&h.fakes, "n1"), "only its packages were downloaded ahead");
}

#[tokio::test(start_paused = true)]
async fn a_signal_during_the_upgrade_waits_for_apt_and_stops_before_the_cordon() {
    let h = Harness::new(2);
    h.fakes.w().cancel_at = Some(("await", h.cancel.clone()));
    let mut rec = record(2);
    let stop = h.run(&mut rec).await.unwrap_err();
    assert_eq!(stop, RunStop::Interrupted);
    assert_eq!(rec.nodes[0].state, NodeState::Upgraded, "apt ran to its end");
    assert!(h.fakes.node("n0").pending.is_empty());
    assert_eq!(h.fakes.count("cordon"), 0);
}

#[tokio::test(start_paused = true)]
async fn a_second_signal_stops_waiting_for_apt() {
    let h = Harness::new(1);
    h.fakes.edit("n0", |n| n.pending = vec!["linux-azure"]);
    h.cancel.cancel();
    h.abandon.cancel();
    let mut rec = record(1);
    // Signals before the first node: the run does not even start it.
    assert_eq!(h.run(&mut rec).await.unwrap_err(), RunStop::Interrupted);
    assert_eq!(h.fakes.count("upgrade"), 0);

    let h = Harness::new(1);
    h.fakes.w().cancel_at = Some(("upgrade", h.abandon.clone()));
    let mut rec = record(1);
    assert_eq!(h.run(&mut rec).await.unwrap_err(), RunStop::Interrupted);
    assert_eq!(
        rec.nodes[0].state,
        NodeState::Pending,
        "the upgrade is not known to have finished"
    );
    let step = rec.nodes[0].steps.last().unwrap();
    assert!(step.detail.contains("apt is still running on node n0"), "{step:?}");
}

#[tokio::test(start_paused = true)]
async fn a_signal_mid_drain_uncordons() {
    let h = Harness::new(2);
    h.fakes.w().cancel_at = Some(("drain", h.cancel.clone()));
    let mut rec = record(2);
    assert_eq!(h.run(&mut rec).await.unwrap_err(), RunStop::Interrupted);
    let n0 = h.fakes.node("n0");
    assert!(!n0.unschedulable && n0.marked.is_none());
    assert_eq!(h.fakes.count("reboot"), 0);
}

#[tokio::test(start_paused = true)]
async fn a_signal_during_the_reboot_waits_for_the_node_then_stops() {
    let h = Harness::new(2);
    h.fakes.w().cancel_at = Some(("reboot", h.cancel.clone()));
    let mut rec = record(2);
    assert_eq!(h.run(&mut rec).await.unwrap_err(), RunStop::Interrupted);
    assert_eq!(rec.nodes[0].state, NodeState::Done);
    assert!(!h.fakes.node("n0").unschedulable);
    assert_eq!(rec.nodes[1].state, NodeState::Pending);
}

#[tokio::test(start_paused = true)]
async fn a_node_that_never_returns_is_left_cordoned_in_hand_and_named() {
    let h = Harness::new(2);
    h.fakes.edit("n0", |n| n.never_returns = true);
    let mut rec = record(2);
    let stop = h.run(&mut rec).await.unwrap_err();
    assert!(
        matches!(stop.halt(), Some(Halt::NotBack { error }) if error.message.contains("did not come back")),
        "{stop:?}"
    );
    assert!(rec.nodes[0].in_hand);
    assert!(h.fakes.node("n0").marked.is_some());
    assert_eq!(rec.nodes[1].state, NodeState::Pending);
}

#[tokio::test(start_paused = true)]
async fn a_failed_download_ahead_changes_nothing_but_the_next_upgrade_downloads() {
    let h = Harness::new(2);
    h.fail("prefetch", PortError::new("mirror unreachable"));
    let mut rec = record(2);
    h.run(&mut rec).await.unwrap();
    assert_eq!(states(&rec), [NodeState::Done; 2]);
    assert_eq!(h.fakes.count("upgrade"), 2);
    assert_eq!(h.fakes.w().max_out, 1);
}

#[tokio::test(start_paused = true)]
async fn a_signal_at_the_health_gate_takes_nothing_out_and_resume_finishes() {
    let h = Harness::new(2);
    h.fakes.w().cancel_at = Some(("gate", h.cancel.clone()));
    h.fakes.edit("n1", |n| n.ready = false); // the gate waits, so the signal lands there
    let mut rec = record(1);
    assert_eq!(h.run(&mut rec).await.unwrap_err(), RunStop::Interrupted);
    assert_eq!(rec.nodes[0].state, NodeState::Upgraded);
    assert_eq!(h.fakes.count("cordon"), 0);
    h.fakes.edit("n1", |n| n.ready = true);
    let h2 = Harness {
        fakes: h.fakes.clone(),
        ..Harness::new(0)
    };
    h2.fakes.w().cancel_at = None;
    h2.run(&mut rec).await.unwrap();
    assert_eq!(states(&rec), [NodeState::Done]);
    assert_eq!(h.fakes.count("upgrade"), 1, "not upgraded twice");
}

#[tokio::test(start_paused = true)]
async fn a_signal_while_downloading_ahead_finishes_the_node_in_hand_then_resume_goes_on() {
    let h = Harness::new(2);
    h.fakes.w().cancel_at = Some(("prefetch", h.cancel.clone()));
    let mut rec = record(2);
    assert_eq!(h.run(&mut rec).await.unwrap_err(), RunStop::Interrupted);
    assert_eq!(states(&rec), [NodeState::Done, NodeState::Pending]);
    assert!(!h.fakes.node("n0").unschedulable);
    assert!(!changed(&h.fakes, "n1"), "only downloaded ahead");
    let h2 = Harness {
        fakes: h.fakes.clone(),
        ..Harness::new(0)
    };
    h2.fakes.w().cancel_at = None;
    h2.run(&mut rec).await.unwrap();
    assert_eq!(states(&rec), [NodeState::Done; 2]);
    assert_eq!(h.fakes.w().max_out, 1);
}

#[tokio::test(start_paused = true)]
async fn a_node_that_dies_while_the_previous_one_reboots_holds_the_next_cordon() {
    let h = Harness::new(3);
    // n2 dies while n0 reboots (its packages for n1 are downloading meanwhile).
    let f = h.fakes.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(12)).await;
        f.edit("n2", |n| n.ready = false);
    });
    let mut rec = record(2);
    let stop = h.run(&mut rec).await.unwrap_err();
    assert_eq!(held_by(&stop), [n2_not_ready()], "{stop:?}");
    assert_eq!(states(&rec), [NodeState::Done, NodeState::Failed]);
    assert_eq!(h.fakes.count("cordon"), 1, "only n0 was ever cordoned");
    assert!(!h.fakes.node("n1").unschedulable);
    // Once n2 is back, the resume finishes n1, redoing it from its upgrade.
    h.fakes.edit("n2", |n| n.ready = true);
    h.run(&mut rec).await.unwrap();
    assert_eq!(states(&rec), [NodeState::Done; 2]);
}

// ---- resume from every state

#[tokio::test(start_paused = true)]
async fn resume_redoes_a_failed_node_from_its_upgrade() {
    let h = Harness::new(1);
    h.fakes.w().apt_exit = 100;
    let mut rec = record(1);
    h.run(&mut rec).await.unwrap_err();
    h.fakes.w().apt_exit = 0;
    h.run(&mut rec).await.unwrap();
    assert_eq!(states(&rec), [NodeState::Done]);
    assert_eq!(h.fakes.count("upgrade"), 2, "upgraded again");
    assert!(h.fakes.node("n0").pending.is_empty());
    assert_eq!(h.fakes.node("n0").kernel, NEW);
}

#[tokio::test(start_paused = true)]
async fn resume_of_an_upgraded_node_reboots_it_without_upgrading_again() {
    let h = Harness::new(1);
    h.fakes.w().cancel_at = Some(("await", h.cancel.clone()));
    let mut rec = record(1);
    h.run(&mut rec).await.unwrap_err();
    let h2 = Harness {
        fakes: h.fakes.clone(),
        ..Harness::new(0)
    };
    h2.fakes.w().cancel_at = None;
    h2.run(&mut rec).await.unwrap();
    assert_eq!(h.fakes.count("upgrade"), 1);
    assert_eq!(h.fakes.count("reboot"), 1);
    assert_eq!(states(&rec), [NodeState::Done]);
}

#[tokio::test(start_paused = true)]
async fn resume_of_a_node_left_cordoned_that_rebooted_since_uncordons_it() {
    let h = Harness::new(2);
    h.fakes.edit("n0", |n| n.boot_secs = 400);
    let mut rec = record(2);
    h.run(&mut rec).await.unwrap_err(); // reboot timeout (300 s)
    assert!(rec.nodes[0].in_hand);
    tokio::time::sleep(Duration::from_secs(200)).await; // it comes back meanwhile
    assert!(h.fakes.node("n0").ready);
    h.run(&mut rec).await.unwrap();
    assert_eq!(states(&rec), [NodeState::Done; 2]);
    let proof = rec.nodes[0].proof.as_ref().unwrap();
    assert!(proof.rebooted, "proven as rebooted: {proof:?}");
    assert_eq!(proof.boot_id_after.as_deref(), Some("boot-2"));
    assert_eq!(h.fakes.count("reboot"), 2, "n0 once, n1 once");
    assert!(!h.fakes.node("n0").unschedulable);
    assert_eq!(h.fakes.w().max_out, 1);
}

#[tokio::test(start_paused = true)]
async fn resume_of_a_node_left_cordoned_and_still_down_waits_for_it() {
    let h = Harness::new(1);
    h.fakes.edit("n0", |n| n.boot_secs = 400);
    let mut rec = record(1);
    h.run(&mut rec).await.unwrap_err();
    h.run(&mut rec).await.unwrap();
    assert_eq!(states(&rec), [NodeState::Done]);
    assert_eq!(h.fakes.count("reboot"), 1, "not rebooted twice");
    assert!(!h.fakes.node("n0").unschedulable);
}

#[tokio::test(start_paused = true)]
async fn resume_of_a_cordoned_or_drained_node_finishes_it() {
    for state in [NodeState::Cordoned, NodeState::Drained] {
        let h = Harness::new(1);
        let mut rec = record(1);
        // As a killed run left it: upgraded, cordoned and marked.
        h.fakes.edit("n0", |n| {
            n.pending = vec![];
            n.reboot_required = true;
            n.unschedulable = true;
            n.marked = Some("run-0".into());
        });
        rec.nodes[0].state = state;
        rec.nodes[0].in_hand = true;
        rec.nodes[0].boot_id_before = Some("boot-1".into());
        h.run(&mut rec).await.unwrap();
        assert_eq!(states(&rec), [NodeState::Done], "{state:?}");
        assert_eq!(h.fakes.count("upgrade"), 0, "{state:?}");
        assert_eq!(h.fakes.count("reboot"), 1, "{state:?}");
        assert!(h.fakes.node("n0").marked.is_none());
    }
}

#[tokio::test(start_paused = true)]
async fn resume_of_a_rebooting_node_waits_for_it() {
    for state in [NodeState::Rebooting, NodeState::Back] {
        let h = Harness::new(1);
        let mut rec = record(1);
        h.fakes.edit("n0", |n| {
            n.ready = false;
            n.unschedulable = true;
            n.marked = Some("run-0".into());
            n.pending = vec![];
        });
        let f = h.fakes.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(10)).await;
            f.edit("n0", |n| {
                n.ready = true;
                n.boot = 2;
                n.kernel = NEW.into();
            });
        });
        rec.nodes[0].state = state;
        rec.nodes[0].in_hand = true;
        rec.nodes[0].boot_id_before = Some("boot-1".into());
        h.run(&mut rec).await.unwrap();
        assert_eq!(states(&rec), [NodeState::Done], "{state:?}");
        assert_eq!(h.fakes.count("reboot"), 0, "{state:?}");
        assert!(!h.fakes.node("n0").unschedulable);
    }
}

#[tokio::test(start_paused = true)]
async fn resume_finishes_the_node_left_out_first_even_when_another_node_is_down() {
    let h = Harness::new(3);
    let mut rec = record(2);
    // The killed run had n1 rebooting (n0 was left for later); n2 is down meanwhile.
    h.fakes.edit("n1", |n| {
        n.ready = false;
        n.unschedulable = true;
        n.marked = Some("run-0".into());
        n.pending = vec![];
    });
    h.fakes.edit("n2", |n| n.ready = false);
    let f = h.fakes.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(10)).await;
        f.edit("n1", |n| {
            n.ready = true;
            n.boot = 2;
            n.kernel = NEW.into();
        });
    });
    rec.nodes[1].state = NodeState::Rebooting;
    rec.nodes[1].in_hand = true;
    rec.nodes[1].boot_id_before = Some("boot-1".into());
    let stop = h.run(&mut rec).await.unwrap_err();
    assert_eq!(held_by(&stop), [n2_not_ready()], "{stop:?}");
    assert_eq!(rec.nodes[1].state, NodeState::Done, "n1 finished first");
    let n1 = h.fakes.node("n1");
    assert!(!n1.unschedulable && n1.marked.is_none(), "n1 back in service");
    assert_eq!(h.fakes.count("cordon"), 0, "n0 not taken out beside the dead n2");
    assert!(!h.fakes.node("n0").unschedulable);
}

#[tokio::test(start_paused = true)]
async fn a_held_resume_finishes_only_the_node_left_out() {
    let mut h = Harness::new(2);
    h.hold = Some("a drain would certainly fail");
    let mut rec = record(2);
    // The killed run left n1 cordoned and upgraded (n0 was pending).
    h.fakes.edit("n1", |n| {
        n.pending = vec![];
        n.reboot_required = true;
        n.unschedulable = true;
        n.marked = Some("run-0".into());
    });
    rec.nodes[1].state = NodeState::Cordoned;
    rec.nodes[1].in_hand = true;
    rec.nodes[1].boot_id_before = Some("boot-1".into());
    let stop = h.run(&mut rec).await.unwrap_err();
    assert_eq!(stop, RunStop::Refused("a drain would certainly fail".into()));
    assert_eq!(states(&rec), [NodeState::Pending, NodeState::Done]);
    assert!(!h.fakes.node("n1").unschedulable);
    assert_eq!(h.fakes.node("n1").kernel, NEW, "n1 rebooted into its new kernel");
    assert!(!changed(&h.fakes, "n0"), "n0 not even upgraded");
}

#[tokio::test(start_paused = true)]
async fn a_signal_during_a_held_resume_finishes_the_node_left_out_and_the_next_resume_goes_on() {
    let mut h = Harness::new(2);
    h.hold = Some("a drain would certainly fail");
    h.fakes.w().cancel_at = Some(("reboot", h.cancel.clone()));
    let mut rec = record(2);
    h.fakes.edit("n1", |n| {
        n.pending = vec![];
        n.reboot_required = true;
        n.unschedulable = true;
        n.marked = Some("run-0".into());
    });
    rec.nodes[1].state = NodeState::Cordoned;
    rec.nodes[1].in_hand = true;
    rec.nodes[1].boot_id_before = Some("boot-1".into());
    // Ctrl-C while n1 reboots: n1 is waited for and put back, then the run stops there.
    assert_eq!(h.run(&mut rec).await.unwrap_err(), RunStop::Interrupted);
    assert_eq!(states(&rec), [NodeState::Pending, NodeState::Done]);
    assert!(!h.fakes.node("n1").unschedulable);
    assert!(!changed(&h.fakes, "n0"));
    // Resumed while the pre-flight still holds the others: nothing left out, nothing done.
    let h2 = Harness {
        fakes: h.fakes.clone(),
        hold: Some("a drain would certainly fail"),
        ..Harness::new(0)
    };
    h2.fakes.w().cancel_at = None;
    assert!(matches!(h2.run(&mut rec).await.unwrap_err(), RunStop::Refused(_)));
    assert!(!changed(&h.fakes, "n0"));
    // Once it no longer does, the resume patches n0.
    let h3 = Harness {
        fakes: h.fakes.clone(),
        ..Harness::new(0)
    };
    h3.run(&mut rec).await.unwrap();
    assert_eq!(states(&rec), [NodeState::Done; 2]);
    assert_eq!(h.fakes.w().max_out, 1);
}

#[tokio::test(start_paused = true)]
async fn resume_records_a_deleted_node_as_gone_and_goes_on() {
    let h = Harness::new(2);
    h.fakes.w().nodes.remove("n0");
    let mut rec = record(2);
    h.run(&mut rec).await.unwrap();
    assert_eq!(states(&rec), [NodeState::Gone, NodeState::Done]);
}

#[tokio::test(start_paused = true)]
async fn done_skipped_and_gone_nodes_are_not_touched_again() {
    let h = Harness::new(3);
    let mut rec = record(3);
    rec.nodes[0].state = NodeState::Done;
    rec.nodes[1].state = NodeState::Skipped;
    h.run(&mut rec).await.unwrap();
    assert!(!h.fakes.log().iter().any(|l| l.ends_with(" n0") || l.ends_with(" n1")));
    assert_eq!(rec.nodes[2].state, NodeState::Done);
}

#[tokio::test(start_paused = true)]
async fn azure_linux_nodes_are_upgraded_with_tdnf_between_ubuntu_nodes() {
    let h = Harness::new(3);
    h.fakes.edit("n1", |n| n.tdnf = true);
    let mut rec = record(3);
    h.run(&mut rec).await.unwrap();
    assert_eq!(states(&rec), [NodeState::Done; 3]);
    assert_eq!(h.fakes.w().max_out, 1, "never two nodes out");
    let cmds = h.fakes.w().commands.clone();
    assert_eq!(cmds.len(), 3);
    assert!(cmds[0].1.contains("apt-get") && !cmds[0].1.contains("tdnf"), "{cmds:?}");
    assert!(
        cmds[1].1.contains("dnf-automatic-install.service") && cmds[1].1.ends_with("sudo tdnf -y update --refresh"),
        "{cmds:?}"
    );
    assert!(cmds[2].1.contains("apt-get"), "{cmds:?}");
    // tdnf's output is parsed as tdnf's.
    let names: Vec<&str> = rec.nodes[1].packages_upgraded.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["kernel", "openssl"]);
    assert!(rec.nodes[1].upgrade_output.contains("Complete!"));
    // No download ahead for the Azure Linux node; the Ubuntu node after it has one.
    assert!(
        !h.fakes.log().contains(&"prefetch n1".to_string()),
        "{:?}",
        h.fakes.log()
    );
    assert!(h.fakes.log().contains(&"prefetch n2".to_string()));
}

#[tokio::test(start_paused = true)]
async fn a_failed_tdnf_names_its_error_and_cordons_nothing() {
    let h = Harness::new(1);
    h.fakes.edit("n0", |n| n.tdnf = true);
    h.fakes.w().apt_exit = 1;
    let mut rec = record(1);
    let e = h.run(&mut rec).await.unwrap_err();
    assert!(
        matches!(
            e.halt(),
            Some(Halt::UpgradeExited {
                manager: PackageManager::Tdnf,
                code: 1,
                last: Some(last),
                left: NodeLeft::NotCordoned,
                ..
            }) if last == "Error(1622) : Unable to download packages"
        ),
        "{e:?}"
    );
    let msg = e.message();
    assert!(
        msg.contains("(tdnf exit 1: Error(1622) : Unable to download packages)") && msg.contains("not cordoned"),
        "{msg}"
    );
    assert_eq!(h.fakes.count("cordon"), 0);
    assert_eq!(rec.nodes[0].state, NodeState::Failed);
}

#[tokio::test(start_paused = true)]
async fn security_mode_on_azure_linux_needs_consent_to_install_all() {
    let mut h = Harness::new(1);
    h.fakes.edit("n0", |n| n.tdnf = true);
    h.options.upgrade_mode = UpgradeMode::Security;
    let mut rec = record(1);
    let e = h.run(&mut rec).await.unwrap_err();
    assert!(
        matches!(
            e.halt(),
            Some(Halt::SecurityUnclassified {
                left: NodeLeft::NotCordoned,
                ..
            })
        ),
        "{e:?}"
    );
    assert!(!changed(&h.fakes, "n0"), "{:?}", h.fakes.log());

    h.options.azure_linux_security_as_all = true;
    let mut rec = record(1);
    h.run(&mut rec).await.unwrap();
    assert_eq!(states(&rec), [NodeState::Done]);
    let n = h.fakes.node("n0");
    assert_eq!(n.kernel, NEW);
    assert!(n.pending.is_empty(), "all updates, not none");
    assert!(h.fakes.w().commands[0].1.contains("tdnf -y update"));
}

#[tokio::test(start_paused = true)]
async fn azure_linux_2_is_patched_only_with_consent() {
    let mut h = Harness::new(1);
    h.fakes.edit("n0", |n| {
        n.tdnf = true;
        n.mariner = true
    });
    let mut rec = record(1);
    let e = h.run(&mut rec).await.unwrap_err();
    assert!(
        matches!(
            e.halt(),
            Some(Halt::EndOfSupport {
                left: NodeLeft::NotCordoned,
                ..
            })
        ),
        "{e:?}"
    );
    assert!(!changed(&h.fakes, "n0"));
    h.options.allow_azure_linux_2 = true;
    let mut rec = record(1);
    h.run(&mut rec).await.unwrap();
    assert_eq!(states(&rec), [NodeState::Done]);
}

#[tokio::test(start_paused = true)]
async fn an_ubuntu_node_whose_marker_is_back_after_the_reboot_is_not_reported_patched() {
    let h = Harness::new(2);
    h.fakes.edit("n0", |n| n.reboot_need_stays = true);
    let mut rec = record(2);
    let stop = h.run(&mut rec).await.unwrap_err();
    assert!(
        matches!(
            stop.halt(),
            Some(Halt::NotPatchedAfterReboot {
                no: NoProof::RebootStillRequired { what, .. },
                ..
            }) if what.contains("/var/run/reboot-required")
        ),
        "{stop:?}"
    );
    assert_eq!(states(&rec), [NodeState::Failed, NodeState::Pending]);
    let n = h.fakes.node("n0");
    assert!(!n.unschedulable && n.marked.is_none(), "put back before stopping");
    assert!(!changed(&h.fakes, "n1"));
}

#[tokio::test(start_paused = true)]
async fn an_azure_linux_node_that_still_needs_a_reboot_is_not_reported_patched() {
    let h = Harness::new(2);
    h.fakes.edit("n0", |n| {
        n.tdnf = true;
        n.reboot_need_stays = true
    });
    let mut rec = record(2);
    let stop = h.run(&mut rec).await.unwrap_err();
    assert!(
        matches!(
            stop.halt(),
            Some(Halt::NotPatchedAfterReboot {
                no: NoProof::RebootStillRequired { what, .. },
                ..
            }) if what.contains("needs-restarting -r")
        ),
        "{stop:?}"
    );
    assert_eq!(states(&rec), [NodeState::Failed, NodeState::Pending]);
    let n = h.fakes.node("n0");
    assert!(!n.unschedulable && n.marked.is_none(), "put back before stopping");
    assert!(!changed(&h.fakes, "n1"));
}

/// `step node` lines of the fakes' log.
fn count_on(f: &Fakes, step: &str, node: &str) -> usize {
    let line = format!("{step} {node}");
    f.log().iter().filter(|l| **l == line).count()
}

#[tokio::test(start_paused = true)]
async fn no_proof_no_patched_a_node_unchecked_after_its_reboot_is_put_back_unproven_and_the_run_stops() {
    let h = Harness::new(2);
    h.fakes.edit("n0", |n| n.down_after_reboot = true);
    let mut rec = record(2);
    let t0 = Instant::now();
    let stop = h.run(&mut rec).await.unwrap_err();
    assert!(
        matches!(
            stop.halt(),
            Some(Halt::Unproven {
                why: Unproven::Unchecked { release: Some(r), .. },
                ..
            }) if r.put_back()
        ),
        "{stop:?}"
    );
    let msg = stop.message();
    assert!(
        msg.contains("node n0 is not proven patched (recorded unproven)")
            && msg.contains("Connection refused")
            && msg.contains("--reboot-timeout (300s)")
            && msg.contains("--resume"),
        "{msg}"
    );
    assert_eq!(states(&rec), [NodeState::Unproven, NodeState::Pending]);
    assert!(rec.nodes[0].proof.is_none(), "no proof recorded");
    assert!(rec.nodes[0].error.as_deref().unwrap().contains("Connection refused"));
    assert_eq!(rec.nodes[0].boot_id_before.as_deref(), Some("boot-1"));
    assert_eq!(rec.nodes[0].boot_id_after.as_deref(), Some("boot-2"));
    let n = h.fakes.node("n0");
    assert!(
        n.ready && !n.unschedulable && n.marked.is_none(),
        "released: capacity is back"
    );
    assert!(!rec.nodes[0].in_hand);
    // Tried again within --reboot-timeout (300 s from the reboot), not once only.
    assert!(count_on(&h.fakes, "probe", "n0") > 5, "{:?}", h.fakes.log());
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_secs(290) && took < Duration::from_secs(400),
        "{took:?}"
    );
    assert!(!changed(&h.fakes, "n1"), "nothing else started");
    // The record on disk says the same.
    let saved = Journal::new(h.dir.path()).runs(&rec.cluster.key).unwrap();
    assert_eq!(saved[0].nodes[0].state, NodeState::Unproven);
    assert_eq!(enum_text(&NodeState::Unproven), "unproven");
}

#[tokio::test(start_paused = true)]
async fn a_check_after_the_reboot_that_succeeds_within_the_timeout_proves_the_node() {
    let h = Harness::new(2);
    h.fakes.edit("n0", |n| n.down_after_reboot = true);
    let f = h.fakes.clone();
    tokio::spawn(async move {
        // The transport comes back a minute after the reboot.
        while count_on(&f, "reboot", "n0") == 0 {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        tokio::time::sleep(Duration::from_secs(60)).await;
        f.edit("n0", |n| {
            n.probe_down = false;
            n.down_after_reboot = false;
        });
    });
    let mut rec = record(2);
    h.run(&mut rec).await.unwrap();
    assert_eq!(states(&rec), [NodeState::Done; 2]);
    let proof = rec.nodes[0].proof.as_ref().expect("the proof is recorded");
    assert!(proof.rebooted);
    assert_eq!(proof.boot_id_before.as_deref(), Some("boot-1"));
    assert_eq!(proof.boot_id_after.as_deref(), Some("boot-2"));
    assert_eq!(proof.kernel, NEW);
    assert!(count_on(&h.fakes, "probe", "n0") > 3, "retried: {:?}", h.fakes.log());
    assert_eq!(h.fakes.w().max_out, 1);
}

#[tokio::test(start_paused = true)]
async fn resume_proves_an_unproven_node_first_without_cordon_or_reboot_then_goes_on() {
    let h = Harness::new(2);
    h.fakes.edit("n0", |n| n.down_after_reboot = true);
    let mut rec = record(2);
    h.run(&mut rec).await.unwrap_err();
    assert_eq!(rec.nodes[0].state, NodeState::Unproven);
    let cordons = count_on(&h.fakes, "cordon", "n0");

    // Still unreachable: it stays unproven, nothing else is started.
    let stop = h.run(&mut rec).await.unwrap_err();
    assert!(
        matches!(
            stop.halt(),
            Some(Halt::Unproven {
                why: Unproven::StillUnchecked { .. },
                ..
            })
        ),
        "{stop:?}"
    );
    assert!(
        stop.message().contains("node n0 is not proven patched"),
        "{}",
        stop.message()
    );
    assert_eq!(states(&rec), [NodeState::Unproven, NodeState::Pending]);
    assert!(!changed(&h.fakes, "n1"));

    // The transport is fixed: the resume proves n0 first, then patches n1.
    h.fakes.edit("n0", |n| {
        n.probe_down = false;
        n.down_after_reboot = false;
    });
    let before = h.fakes.log().len();
    h.run(&mut rec).await.unwrap();
    assert_eq!(states(&rec), [NodeState::Done; 2]);
    assert_eq!(count_on(&h.fakes, "cordon", "n0"), cordons, "n0 not cordoned again");
    assert_eq!(count_on(&h.fakes, "reboot", "n0"), 1, "n0 not rebooted again");
    assert_eq!(count_on(&h.fakes, "upgrade", "n0"), 1, "n0 not upgraded again");
    let proof = rec.nodes[0].proof.as_ref().expect("proven");
    assert_eq!(proof.boot_id_after.as_deref(), Some("boot-2"));
    let log = h.fakes.log()[before..].to_vec();
    let at = |l: &str| {
        log.iter()
            .position(|x| x == l)
            .unwrap_or_else(|| panic!("{l} in {log:?}"))
    };
    assert!(at("probe n0") < at("probe n1"), "n0 proven first: {log:?}");
    assert!(h.fakes.node("n1").boot > 1, "n1 rebooted");
    assert_eq!(h.fakes.w().max_out, 1);
}

#[tokio::test(start_paused = true)]
async fn resume_of_an_unproven_node_whose_marker_is_back_fails_it_without_a_reboot() {
    let h = Harness::new(1);
    h.fakes.edit("n0", |n| n.down_after_reboot = true);
    let mut rec = record(1);
    h.run(&mut rec).await.unwrap_err();
    h.fakes.edit("n0", |n| {
        n.probe_down = false;
        n.reboot_required = true;
    });
    let stop = h.run(&mut rec).await.unwrap_err();
    assert!(
        stop.message().contains("/var/run/reboot-required is still there"),
        "{}",
        stop.message()
    );
    assert_eq!(states(&rec), [NodeState::Failed]);
    assert_eq!(h.fakes.count("reboot"), 1, "not rebooted by the check");
    assert!(!h.fakes.node("n0").unschedulable);
}

/// Daily 00:00-01:00 UTC, a node budget of 20 minutes, the clock at `at`.
fn window_at(at: &str) -> Option<WindowPolicy> {
    let mut schedule = Schedule::new("UTC").unwrap();
    schedule.add_daily(super::super::window::DailyWindow::parse("00:00-01:00").unwrap());
    Some(WindowPolicy {
        schedule,
        budget: Duration::from_secs(20 * 60),
        clock: Arc::new(PausedClock::at(at)),
    })
}

#[tokio::test(start_paused = true)]
async fn outside_the_window_nothing_is_touched_and_the_next_opening_is_given() {
    let h = Harness {
        window: window_at("2026-12-02T12:00:00Z"),
        ..Harness::new(2)
    };
    let mut rec = record(2);
    let stop = h.run(&mut rec).await.unwrap_err();
    let RunStop::OutsideWindow(msg) = &stop else {
        panic!("{stop:?}")
    };
    assert!(
        msg.contains("not starting node n0") && msg.contains("outside the maintenance window"),
        "{msg}"
    );
    assert!(msg.contains("the next window opens 2026-12-03T00:00:00Z"), "{msg}");
    assert!(h.fakes.log().is_empty(), "{:?}", h.fakes.log());
    assert_eq!(states(&rec), [NodeState::Pending; 2]);
}

#[tokio::test(start_paused = true)]
async fn a_window_that_closes_mid_run_stops_between_nodes_and_resume_finishes_in_the_next() {
    let h = Harness {
        window: window_at("2026-12-02T00:39:00Z"),
        ..Harness::new(3)
    };
    // n0 takes over two minutes: n1 would no longer be back by 01:00.
    h.fakes.edit("n0", |n| n.boot_secs = 120);
    let mut rec = record(3);
    let stop = h.run(&mut rec).await.unwrap_err();
    let RunStop::OutsideWindow(msg) = &stop else {
        panic!("{stop:?}")
    };
    assert!(
        msg.contains("not starting node n1") && msg.contains("closes 2026-12-02T01:00:00Z"),
        "{msg}"
    );
    assert_eq!(states(&rec), [NodeState::Done, NodeState::Pending, NodeState::Pending]);
    assert!(!changed(&h.fakes, "n1") && !changed(&h.fakes, "n2"));
    for i in 0..3 {
        let n = h.fakes.node(&format!("n{i}"));
        assert!(!n.unschedulable && n.marked.is_none(), "n{i} left out");
    }
    // The next night: the rest is done, n0 is not touched again.
    let h2 = Harness {
        fakes: h.fakes.clone(),
        window: window_at("2026-12-03T00:00:00Z"),
        ..Harness::new(0)
    };
    h2.run(&mut rec).await.unwrap();
    assert_eq!(states(&rec), [NodeState::Done; 3]);
    assert_eq!(h.fakes.count("upgrade"), 3, "each node upgraded once");
    assert_eq!(h.fakes.w().max_out, 1);
}

#[tokio::test(start_paused = true)]
async fn a_window_too_short_for_the_reboot_stops_before_the_cordon_with_the_packages_upgraded() {
    // Fits at the start (00:39:56 + 20m), not after the 5 s upgrade.
    let h = Harness {
        window: window_at("2026-12-02T00:39:56Z"),
        ..Harness::new(1)
    };
    let mut rec = record(1);
    let stop = h.run(&mut rec).await.unwrap_err();
    let RunStop::OutsideWindow(msg) = &stop else {
        panic!("{stop:?}")
    };
    assert!(
        msg.contains("not taking node n0 out") && msg.contains("before a node taking about 20m"),
        "{msg}"
    );
    assert_eq!(rec.nodes[0].state, NodeState::Upgraded);
    assert_eq!(h.fakes.count("cordon"), 0);
    let h2 = Harness {
        fakes: h.fakes.clone(),
        window: window_at("2026-12-03T00:00:00Z"),
        ..Harness::new(0)
    };
    h2.run(&mut rec).await.unwrap();
    assert_eq!(states(&rec), [NodeState::Done]);
    assert_eq!(h.fakes.count("upgrade"), 1, "not upgraded twice");
    assert_eq!(h.fakes.node("n0").kernel, NEW);
}

/// An alert that fires until `clears_at` (paused time); records the nodes it was asked for.
struct FakeAlert {
    clears_at: Instant,
    asked: Mutex<Vec<Option<String>>>,
}

#[async_trait]
impl BlockerSource for FakeAlert {
    async fn holds(&self, node: Option<&str>) -> Vec<crate::rollout::blockers::Hold> {
        self.asked.lock().unwrap().push(node.map(str::to_string));
        if Instant::now() < self.clears_at {
            vec![crate::rollout::blockers::Hold::Alert {
                name: "BackupRunning".into(),
                state: "firing".into(),
            }]
        } else {
            vec![]
        }
    }
}

fn alert_for(secs: u64, wait: u64) -> (Arc<FakeAlert>, Option<BlockerPolicy>) {
    let a = Arc::new(FakeAlert {
        clears_at: Instant::now() + Duration::from_secs(secs),
        asked: Mutex::new(vec![]),
    });
    let p = BlockerPolicy {
        source: a.clone(),
        wait: Duration::from_secs(wait),
        poll: Duration::from_secs(2),
    };
    (a, Some(p))
}

#[tokio::test(start_paused = true)]
async fn a_firing_alert_holds_the_cordon_and_the_run_goes_on_once_it_clears() {
    let (alert, blockers) = alert_for(60, 600);
    let h = Harness {
        blockers,
        ..Harness::new(2)
    };
    let mut rec = record(2);
    let t0 = Instant::now();
    h.run(&mut rec).await.unwrap();
    assert_eq!(states(&rec), [NodeState::Done; 2]);
    assert!(t0.elapsed() >= Duration::from_secs(60), "it waited for the alert");
    assert!(
        alert.asked.lock().unwrap().contains(&Some("n0".to_string())),
        "asked for the node"
    );
    assert_eq!(h.fakes.w().max_out, 1);
}

#[tokio::test(start_paused = true)]
async fn a_blocker_that_does_not_clear_stops_before_the_cordon_with_exit_9_and_resume_finishes() {
    let (_alert, blockers) = alert_for(3600, 30);
    let h = Harness {
        blockers,
        ..Harness::new(1)
    };
    let mut rec = record(1);
    let stop = h.run(&mut rec).await.unwrap_err();
    let RunStop::Blocked(msg) = &stop else {
        panic!("{stop:?}")
    };
    assert!(
        msg.contains("not taking node n0 out")
            && msg.contains("alert BackupRunning is firing")
            && msg.contains("--blocker-wait"),
        "{msg}"
    );
    assert_eq!(rec.nodes[0].state, NodeState::Upgraded);
    assert_eq!(h.fakes.count("cordon"), 0);
    // Once it has cleared, --resume reboots the node without upgrading it again.
    let h2 = Harness {
        fakes: h.fakes.clone(),
        ..Harness::new(0)
    };
    h2.run(&mut rec).await.unwrap();
    assert_eq!(states(&rec), [NodeState::Done]);
    assert_eq!(h.fakes.count("upgrade"), 1);
}
