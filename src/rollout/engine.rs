//! The rollout engine: node after node, each through
//! `pending → upgraded → (done) | cordoned → drained → rebooting → back → done`, or into
//! `failed` (or `gone`). One method per transition; every transition is written to the run
//! record before the next side effect, so `--resume`, Ctrl-C and the tests read one source of
//! truth.
//!
//! Safe points, and what is checked there, in this order: the lock is ours (fencing, before
//! every cordon, eviction attempt and reboot), the health gate (no other node out, the last
//! node's workloads Ready again; before every cordon), a signal (between steps; apt is never
//! cut off). The engine reaches the world only through [`super::ports`], tells what it does
//! through [`super::progress`] and reads the time from a [`Clock`]: the unit tests below
//! drive it with fakes and paused time.

use super::blockers::{wait_clear, BlockStop, BlockerSource};
use super::gate::{wait_gate, GateStop};
use super::journal::{
    self, NodeState, ObjectRef, RebootPolicy, RunOptions, RunRecord, Step, StepName, StepOutcome, UpgradeMode,
    UpgradedPackage,
};
use super::ports::{Cluster, DrainStop, Fence, NodeTarget, PortError, RecordStore, Transport};
use super::progress::{Detail, Event, NodeStep, Progress, Resumed, Wait, WaitDetail, Warning};
use super::proof::{effective_mode, pending_of, NoProof, Proof, RebootProof, UpgradeProof};
use super::stop::{Halt, NodeLeft, Release, RunStop, Unproven, UpgradeStopped, UpgradeUnfinished};
use super::window::{Clock, Schedule};
use crate::kube::drain::{DrainEvent, DrainOptions, WorkloadRef};
use crate::kube::reboot::RebootEvent;
use crate::kube::NodeRow;
use crate::node::{self, PackageManager, Probe};
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How often a running upgrade is looked at while it waits for the dpkg lock (the status
/// line says who holds it, and for how long).
const LOCK_WAIT_POLL: Duration = Duration::from_secs(5);

/// The engine's settings beyond the run options.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub options: RunOptions,
    pub drain: DrainOptions,
    pub run_id: String,
    /// How long the health gate may hold a disruption before the run stops.
    pub gate_wait: Duration,
    /// How often the gate looks again while something blocks.
    pub gate_poll: Duration,
    /// How long one upgrade may run in all.
    pub upgrade_timeout: Duration,
    /// How long apt waits for the dpkg lock (unattended-upgrades) on a node.
    pub dpkg_lock_timeout_secs: u64,
    /// How long one wait for the detached upgrade lasts before it is asked again.
    pub upgrade_poll: Duration,
}

impl EngineConfig {
    pub fn new(
        options: RunOptions,
        drain: DrainOptions,
        run_id: impl Into<String>,
        gate_wait: Duration,
    ) -> EngineConfig {
        EngineConfig {
            options,
            drain,
            run_id: run_id.into(),
            gate_wait,
            gate_poll: Duration::from_secs(1),
            upgrade_timeout: Duration::from_secs(3600),
            dpkg_lock_timeout_secs: 600,
            upgrade_poll: Duration::from_secs(20),
        }
    }
}

/// The maintenance windows a run keeps to: a node is taken out only when it is expected to be
/// back (`budget`) before its window closes.
#[derive(Clone)]
pub struct WindowPolicy {
    pub schedule: Schedule,
    /// How long one node is expected to be out (past runs' median, else `--node-budget`).
    pub budget: Duration,
    pub clock: std::sync::Arc<dyn Clock>,
}

/// A node's turn, as told to a hook (notifications).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodePhase {
    Started,
    Done,
    /// The run stopped on this node (a failure, the lock lost, a blocker): the reason.
    Halted,
}

/// Called at each node's start, end or halt, with the node's record and the reason of a halt.
pub type NodeHook = std::sync::Arc<dyn Fn(NodePhase, &journal::NodeRecord, Option<&str>) + Send + Sync>;

/// The operator's blockers, checked before every cordon and waited for up to `wait`.
#[derive(Clone)]
pub struct BlockerPolicy {
    pub source: std::sync::Arc<dyn BlockerSource>,
    pub wait: Duration,
    pub poll: Duration,
}

/// What the engine works through: the world ([`super::ports`]), where it tells what it does,
/// and the clock it reads the time from.
#[derive(Clone, Copy)]
pub struct Ports<'a> {
    pub cluster: &'a dyn Cluster,
    pub transport: &'a dyn Transport,
    pub fence: &'a dyn Fence,
    pub journal: &'a dyn RecordStore,
    pub progress: &'a dyn Progress,
    pub clock: &'a dyn Clock,
}

/// The signals a run obeys: the first Ctrl-C stops at the next safe point, the second one
/// stops waiting for apt on the node.
#[derive(Clone, Default)]
pub struct Signals {
    pub cancel: CancellationToken,
    pub abandon: CancellationToken,
}

pub struct Engine<'a> {
    cluster: &'a dyn Cluster,
    transport: &'a dyn Transport,
    fence: &'a dyn Fence,
    journal: &'a dyn RecordStore,
    progress: &'a dyn Progress,
    clock: &'a dyn Clock,
    cfg: EngineConfig,
    /// First Ctrl-C: stop at the next safe point.
    cancel: CancellationToken,
    /// Second Ctrl-C: stop waiting for apt on the node.
    abandon: CancellationToken,
    /// Set once fencing failed: nothing new is started after.
    lock_lost: Option<String>,
    /// The node after the one in hand: its packages are downloaded while this one reboots.
    next: Option<String>,
    /// The maintenance windows, if the run keeps to any.
    window: Option<WindowPolicy>,
    /// The operator's blockers, if any.
    blockers: Option<BlockerPolicy>,
    /// Told about each node's turn (notifications).
    on_node: Option<NodeHook>,
    /// Why no node but those left out of service may be started (a resume that the
    /// pre-flight would have refused): the run stops with it before the first such node.
    hold_others: Option<RunStop>,
    /// The first write of the run record that failed (the record's path, the cause): the
    /// run stops at the next safe point, finishing the node in hand first.
    record_failed: std::sync::OnceLock<(std::path::PathBuf, String)>,
}

/// How a node's turn ended.
enum NodeEnd {
    /// Patched: only with its proof.
    Done(Proof),
    Gone,
    /// Back from its reboot (a new bootID, Ready) and put back in service, but the check
    /// after the reboot could not be made: why. The run stops on it.
    Unproven(Unproven),
}

/// How long a resume tries to reach an `unproven` node before it leaves it unproven.
const PROVE_AGAIN_WITHIN: Duration = Duration::from_secs(60);

/// The first wait between two attempts to probe a node after its reboot, and the longest.
const PROBE_RETRY_FIRST: Duration = Duration::from_secs(2);
const PROBE_RETRY_MAX: Duration = Duration::from_secs(20);
/// The least time one probe after a reboot is given (as long as a transport's own probe
/// may take: run commands take tens of seconds).
const PROBE_ATTEMPT_MIN: Duration = Duration::from_secs(120);

/// A node a resumed run finishes before any other: left out of service, or rebooted but
/// not proven patched.
fn first_on_resume(n: &journal::NodeRecord) -> bool {
    n.left_out() || n.state == NodeState::Unproven
}

fn target(row: &NodeRow) -> NodeTarget {
    NodeTarget {
        name: row.name.clone(),
        address: row.internal_ip.clone(),
    }
}

impl<'a> Engine<'a> {
    pub fn new(ports: Ports<'a>, cfg: EngineConfig, signals: Signals) -> Engine<'a> {
        Engine {
            cluster: ports.cluster,
            transport: ports.transport,
            fence: ports.fence,
            journal: ports.journal,
            progress: ports.progress,
            clock: ports.clock,
            cfg,
            cancel: signals.cancel,
            abandon: signals.abandon,
            lock_lost: None,
            next: None,
            window: None,
            blockers: None,
            on_node: None,
            hold_others: None,
            record_failed: std::sync::OnceLock::new(),
        }
    }

    /// Finish only the nodes left out of service, then stop with `stop` before any other.
    pub fn with_hold_others(mut self, stop: RunStop) -> Engine<'a> {
        self.hold_others = Some(stop);
        self
    }

    /// Tell `hook` about each node's start, end and halt.
    pub fn with_node_hook(mut self, hook: NodeHook) -> Engine<'a> {
        self.on_node = Some(hook);
        self
    }

    fn hook(&self, phase: NodePhase, node: &journal::NodeRecord, reason: Option<&str>) {
        if let Some(h) = &self.on_node {
            h(phase, node, reason);
        }
    }

    fn tell(&self, event: Event) {
        self.progress.tell(event);
    }

    /// What a step of `node`'s turn did.
    fn step(&self, node: &str, step: NodeStep) {
        self.tell(Event::Step {
            node: node.to_string(),
            step,
        });
    }

    fn wait_started(&self, node: &str, wait: Wait, timeout: Duration) {
        self.tell(Event::WaitStarted {
            node: node.to_string(),
            wait,
            timeout,
        });
    }

    fn wait_done(&self, node: &str) {
        self.tell(Event::WaitDone { node: node.to_string() });
    }

    /// The time, as records keep it.
    fn now(&self) -> journal::Time {
        journal::time_of(self.clock.now())
    }

    /// Hold every cordon while these blockers say so (up to their wait).
    pub fn with_blockers(mut self, blockers: BlockerPolicy) -> Engine<'a> {
        self.blockers = Some(blockers);
        self
    }

    /// Keep to these maintenance windows: checked before each node is started and before
    /// each cordon.
    pub fn with_window(mut self, window: WindowPolicy) -> Engine<'a> {
        self.window = Some(window);
        self
    }

    /// `Err` when a node's disruption would not end inside an open window now.
    fn window_check(&self, what: &str) -> Result<(), RunStop> {
        let Some(w) = &self.window else {
            return Ok(());
        };
        let verdict = w.schedule.verdict(self.clock.now(), w.budget);
        if verdict.fits() {
            return Ok(());
        }
        Err(RunStop::OutsideWindow(format!(
            "{what}: {}",
            verdict.explain(&w.schedule, w.budget)
        )))
    }

    /// Why the lock was lost, if it was during the run.
    pub fn lock_lost(&self) -> Option<&str> {
        self.lock_lost.as_deref()
    }

    /// Patch every node of the record that is not finished yet, in order.
    pub async fn run(&mut self, rec: &mut RunRecord) -> Result<(), RunStop> {
        let result = self.run_nodes(rec).await;
        self.tell(Event::RunOver);
        result
    }

    async fn run_nodes(&mut self, rec: &mut RunRecord) -> Result<(), RunStop> {
        // What the last drain evicted: its workloads Ready again, and its PDBs allowing
        // disruptions again, before the next node is taken out (its upgrade may go ahead).
        let mut last_workloads: Vec<WorkloadRef> = vec![];
        let mut last_pdbs: Vec<(String, String)> = vec![];
        let todo = |rec: &RunRecord, i: usize| {
            !matches!(
                rec.nodes[i].state,
                NodeState::Done | NodeState::Skipped | NodeState::Gone
            )
        };
        let total = (0..rec.nodes.len()).filter(|i| todo(rec, *i)).count();
        // A resumed run first finishes the nodes the interrupted run left out of service, so
        // that they are back before anything (a health gate, a window) can stop this run.
        let order = resume_order(rec);
        let mut k = 0;
        for (pos, &i) in order.iter().enumerate() {
            if !todo(rec, i) {
                continue;
            }
            self.checkpoint()?;
            // A node already out of service (a resumed run) is finished whatever the time;
            // a new one is started only if it should be back before the window closes.
            if !first_on_resume(&rec.nodes[i]) {
                if let Some(stop) = self.hold_others.take() {
                    return Err(stop);
                }
                self.window_check(&format!("not starting node {}", rec.nodes[i].name))?;
            }
            k += 1;
            self.next = order[pos + 1..]
                .iter()
                .find(|j| todo(rec, **j))
                .map(|j| rec.nodes[*j].name.clone());
            let node = rec.nodes[i].name.clone();
            self.tell(Event::NodeStarted {
                node: node.clone(),
                index: k,
                total,
            });
            self.hook(NodePhase::Started, &rec.nodes[i], None);
            let result = self.patch_node(rec, i, &last_workloads, &last_pdbs).await;
            self.wait_done(&node);
            match result {
                Ok(NodeEnd::Done(proof)) => {
                    // The only way to `done`: with the proof, kept in the record.
                    rec.nodes[i].state = NodeState::Done;
                    rec.nodes[i].error = None;
                    rec.nodes[i].kernel_after = Some(proof.kernel().to_string());
                    rec.nodes[i].proof = Some(proof.record());
                    rec.nodes[i].finished_at = Some(self.now());
                    self.save(rec);
                    self.step(&node, NodeStep::Done);
                    self.hook(NodePhase::Done, &rec.nodes[i], None);
                    if rec.nodes[i].steps.iter().any(|s| s.name == StepName::Drain) {
                        last_workloads = rec.nodes[i].workloads.clone();
                        last_pdbs = rec.nodes[i]
                            .pdbs
                            .iter()
                            .map(|p| (p.namespace.clone(), p.name.clone()))
                            .collect();
                    }
                    self.between_nodes(rec, i).await?;
                }
                Ok(NodeEnd::Gone) => {
                    rec.nodes[i].state = NodeState::Gone;
                    rec.nodes[i].skip_reason = Some("the node no longer exists (deleted from the cluster)".into());
                    self.save(rec);
                    self.step(&node, NodeStep::Gone);
                }
                Ok(NodeEnd::Unproven(why)) => {
                    rec.nodes[i].state = NodeState::Unproven;
                    rec.nodes[i].error = Some(why.to_string());
                    rec.nodes[i].finished_at = Some(self.now());
                    self.save(rec);
                    self.step(&node, NodeStep::Unproven);
                    let stop = RunStop::from(Halt::Unproven { node, why });
                    self.hook(NodePhase::Halted, &rec.nodes[i], Some(&stop.message()));
                    return Err(stop);
                }
                Err(stop) => {
                    match &stop {
                        RunStop::Failed(_) | RunStop::Refused(_) | RunStop::KuredRebooting(_) => {
                            rec.nodes[i].state = NodeState::Failed;
                            rec.nodes[i].error = Some(stop.message());
                            rec.nodes[i].finished_at = Some(self.now());
                        }
                        RunStop::LockLost(message) => rec.nodes[i].error = Some(message.clone()),
                        RunStop::Interrupted
                        | RunStop::OutsideWindow(_)
                        | RunStop::Blocked(_)
                        | RunStop::RecordUnwritable(_) => {}
                    }
                    self.save(rec);
                    if !matches!(stop, RunStop::Interrupted | RunStop::OutsideWindow(_)) {
                        self.hook(NodePhase::Halted, &rec.nodes[i], Some(&stop.message()));
                    }
                    return Err(stop);
                }
            }
        }
        Ok(())
    }

    /// Write the record before the next side effect. The first failure is said once, and
    /// stops the run at the next safe point ([`Engine::record_stop`]); later writes are still
    /// tried, so that the record on disk is as fresh as it can be.
    fn save(&self, rec: &RunRecord) {
        if let Err(e) = self.journal.save(rec) {
            let (what, cause) = (e.to_string(), e.cause());
            if self.record_failed.set((e.path().to_path_buf(), cause.clone())).is_ok() {
                self.tell(Event::Warning(Warning::RecordUnwritable { what, cause }));
            } else {
                self.tell(Event::Detail(Detail::RecordUnwritable { what, cause }));
            }
        }
    }

    /// The stop to give at a safe point once a record write has failed: `what` (e.g. "not
    /// starting another node"), the record's path, the cause, and what to do.
    fn record_stop(&self, what: &str) -> Option<RunStop> {
        let (path, cause) = self.record_failed.get()?;
        Some(RunStop::RecordUnwritable(format!(
            "{what}: the run record {} cannot be written ({cause}), and the run does not go on without it; free space in {} (or make it writable), then continue with `aks-patch apply ... --one-at-a-time --resume`",
            path.display(),
            path.parent().unwrap_or(path).display()
        )))
    }

    /// A safe point between nodes: stop here if asked to, or if the lock is not ours.
    fn checkpoint(&mut self) -> Result<(), RunStop> {
        if let Some(reason) = self.lock_lost.clone() {
            return Err(RunStop::LockLost(reason));
        }
        if self.cancel.is_cancelled() {
            return Err(RunStop::Interrupted);
        }
        if let Some(stop) = self.record_stop("not starting another node") {
            return Err(stop);
        }
        if let Some(reason) = self.fence.lost_reason() {
            return Err(self.lost(format!("the aks-patch lock was lost ({reason})")));
        }
        Ok(())
    }

    /// Record that the lock is gone; returns the stop to give (an authentication failure
    /// when the API server refused our credentials).
    fn lost(&mut self, reason: String) -> RunStop {
        self.lock_lost.get_or_insert(reason.clone());
        if self.fence.auth_failed() {
            return Halt::CredentialsRefused { reason }.into();
        }
        RunStop::LockLost(reason)
    }

    /// Fencing before a destructive step: the lock must be proven ours now.
    async fn fence(&mut self, step: &str) -> Result<(), RunStop> {
        match self.fence.fence(Duration::ZERO).await {
            Ok(()) => Ok(()),
            Err(e) => Err(self.lost(format!("not {step}: {e}"))),
        }
    }

    fn begin(&self, rec: &mut RunRecord, i: usize, step: StepName) {
        rec.nodes[i].steps.push(Step {
            name: step,
            started_at: self.now(),
            finished_at: None,
            outcome: StepOutcome::Running,
            detail: String::new(),
        });
        self.save(rec);
    }

    fn end(&self, rec: &mut RunRecord, i: usize, outcome: StepOutcome, detail: impl Into<String>) {
        if let Some(s) = rec.nodes[i].steps.last_mut() {
            s.finished_at = Some(self.now());
            s.outcome = outcome;
            s.detail = detail.into();
        }
        self.save(rec);
    }

    async fn patch_node(
        &mut self,
        rec: &mut RunRecord,
        i: usize,
        workloads: &[WorkloadRef],
        pdbs: &[(String, String)],
    ) -> Result<NodeEnd, RunStop> {
        let name = rec.nodes[i].name.clone();
        let t0 = Instant::now();
        let row = match self.cluster.node(&name).await {
            Ok(Some(r)) => r,
            Ok(None) => return Ok(NodeEnd::Gone),
            Err(error) => return Err(Halt::ReadNode { node: name, error }.into()),
        };
        if let Some(end) = self.resume(rec, i, &row).await? {
            return Ok(end);
        }
        let node = target(&row);
        let after = self.upgrade(rec, i, &node).await?;
        if !self.decide_reboot(rec, i, &after) {
            return self.done_without_reboot(rec, i, &row, &after).await;
        }
        if self.cancel.is_cancelled() {
            return self.stop_before_cordon(rec, i).await;
        }
        self.health_gate(rec, i, workloads, pdbs).await?;
        self.window_gate(rec, i).await?;
        if let Some(b) = self.blockers.clone() {
            let waited = wait_clear(
                b.source.as_ref(),
                Some(&name),
                b.wait,
                b.poll,
                &self.cancel,
                self.progress,
            )
            .await;
            match waited {
                Ok(false) => {}
                Ok(true) => {
                    // Time went by: the cluster and the window once more.
                    self.health_gate(rec, i, workloads, pdbs).await?;
                    self.window_gate(rec, i).await?;
                }
                Err(BlockStop::Cancelled) => return self.stop_before_cordon(rec, i).await,
                Err(e) => {
                    let release = self.release_if_in_hand(rec, i).await;
                    return Err(RunStop::Blocked(format!(
                        "not taking node {name} out: {e}; its packages are upgraded{}",
                        super::stop::AndRelease(&release)
                    )));
                }
            }
        }
        self.pods_gate(rec, i).await?;
        // kured must not reboot another node beside ours.
        let ttl = Duration::from_secs(self.cfg.options.drain_timeout + self.cfg.options.reboot_timeout);
        let kured = match self.cluster.take_kured_lock(&name, ttl).await {
            Ok(taken) => {
                if taken {
                    self.step(&name, NodeStep::KuredLockTaken);
                }
                taken
            }
            Err(error) => {
                let release = self.release_if_in_hand(rec, i).await;
                return Err(Halt::KuredLock {
                    node: name,
                    error,
                    release,
                }
                .into());
            }
        };
        let result = self.take_out_and_reboot(rec, i, &row).await;
        if kured {
            if let Err(e) = self.cluster.release_kured_lock(&name).await {
                self.tell(Event::Warning(Warning::KuredLockNotReleased { error: e.to_string() }));
            }
        }
        let end = result?;
        if let NodeEnd::Done(_) = end {
            self.step(&name, NodeStep::Patched { elapsed: t0.elapsed() });
        }
        Ok(end)
    }

    /// A node that does not reboot: put back if an earlier run had taken it out, then proven
    /// by the probe after its upgrade (or, if it rebooted since it was taken out, as rebooted).
    async fn done_without_reboot(
        &mut self,
        rec: &mut RunRecord,
        i: usize,
        row: &NodeRow,
        after: &Probe,
    ) -> Result<NodeEnd, RunStop> {
        let name = rec.nodes[i].name.clone();
        if rec.nodes[i].in_hand {
            // A resumed node that an earlier run had taken out: put it back.
            let release = self.release(rec, i).await;
            self.step(&name, NodeStep::Released(release));
        }
        rec.nodes[i].kernel_after = Some(after.running_kernel.clone());
        let mode = self.cfg.options.upgrade_mode;
        // A node that rebooted since the interrupted run took it out is proven as
        // rebooted when the observations allow it (new bootID, Ready, then this probe).
        let rebooted = rec.nodes[i]
            .boot_id_before
            .as_deref()
            .filter(|_| rec.nodes[i].rebooted)
            .and_then(|before| RebootProof::new(before, row, after, mode).ok());
        let proof = match rebooted {
            Some(p) => Proof::Rebooted(p),
            None => UpgradeProof::new(after, mode, self.cfg.options.reboot)
                .map(Proof::NotRebooted)
                .map_err(|no| Halt::NotPatched { node: name, no })?,
        };
        Ok(NodeEnd::Done(proof))
    }

    /// The maintenance window, just before the node is taken out: when it closes before the
    /// node would be back, its reboot waits for the next one (the node put back if in hand).
    async fn window_gate(&self, rec: &mut RunRecord, i: usize) -> Result<(), RunStop> {
        let name = rec.nodes[i].name.clone();
        if let Err(stop) = self.window_check(&format!("not taking node {name} out")) {
            let release = self.release_if_in_hand(rec, i).await;
            self.step(&name, NodeStep::RebootWaitsForWindow { release });
            return Err(stop);
        }
        Ok(())
    }

    /// Resuming a node that was mid-way: pick up where it was, honestly. `Some` when the
    /// node's turn is over already.
    async fn resume(&mut self, rec: &mut RunRecord, i: usize, row: &NodeRow) -> Result<Option<NodeEnd>, RunStop> {
        let name = rec.nodes[i].name.clone();
        let state = rec.nodes[i].state;
        if state == NodeState::Unproven {
            return self.prove_unproven(rec, i, row).await.map(Some);
        }
        if matches!(state, NodeState::Rebooting | NodeState::Back) {
            self.step(&name, NodeStep::Resuming(Resumed::WasRebooting));
            return self.finish_reboot(rec, i, row).await.map(Some);
        }
        if rec.nodes[i].in_hand {
            let old = rec.nodes[i].boot_id_before.clone();
            if !row.ready {
                self.step(&name, NodeStep::Resuming(Resumed::LeftOutNotReady));
                return self.finish_reboot(rec, i, row).await.map(Some);
            }
            if old.is_some() && row.boot_id.is_some() && row.boot_id != old {
                self.step(&name, NodeStep::Resuming(Resumed::LeftCordonedRebootedSince));
                rec.nodes[i].rebooted = true;
                rec.nodes[i].boot_id_after = row.boot_id.clone();
            } else {
                self.step(&name, NodeStep::Resuming(Resumed::LeftCordoned));
            }
        }
        if state == NodeState::Failed {
            // Every step of a failed node is done again, its upgrade included.
            self.step(&name, NodeStep::Resuming(Resumed::Failed));
            rec.nodes[i].state = NodeState::Pending;
            rec.nodes[i].error = None;
            self.save(rec);
        }
        Ok(None)
    }

    /// Where a node is left when its turn stops before the cordon: put back if an earlier
    /// run had taken it out, else never cordoned.
    async fn left_before_cordon(&self, rec: &mut RunRecord, i: usize) -> NodeLeft {
        match self.release_if_in_hand(rec, i).await {
            Some(release) => NodeLeft::PutBack(release),
            None => NodeLeft::NotCordoned,
        }
    }

    /// Where a node stays while its upgrade cannot go on: in hand if an earlier run had
    /// taken it out (nothing is tried), else never cordoned.
    fn left_as_is(&self, rec: &RunRecord, i: usize) -> NodeLeft {
        if rec.nodes[i].in_hand {
            NodeLeft::InHand
        } else {
            NodeLeft::NotCordoned
        }
    }

    /// Step 1: probe, upgrade (detached on the node), probe again. Returns the last probe:
    /// nothing of the chosen mode may be pending in it.
    async fn upgrade(&mut self, rec: &mut RunRecord, i: usize, node: &NodeTarget) -> Result<Probe, RunStop> {
        let name = node.name.clone();
        self.begin(rec, i, StepName::Probe);
        let probe = match self.transport.probe(node).await {
            Ok(p) => p,
            Err(error) => {
                self.end(rec, i, StepOutcome::Failed, error.to_string());
                return Err(Halt::Probe {
                    node: name,
                    after_upgrade: false,
                    error,
                    left: self.left_as_is(rec, i),
                }
                .into());
            }
        };
        self.end(rec, i, StepOutcome::Ok, "");
        if let Some(why) = &probe.unsupported {
            return Err(Halt::Unsupported {
                node: name,
                why: why.clone(),
            }
            .into());
        }
        if let Some(eos) = probe
            .end_of_support
            .as_ref()
            .filter(|_| !self.cfg.options.allow_azure_linux_2)
        {
            return Err(Halt::EndOfSupport {
                node: name,
                why: eos.clone(),
                left: self.left_before_cordon(rec, i).await,
            }
            .into());
        }
        let pm = probe.package_manager;
        let asked = self.cfg.options.upgrade_mode;
        if asked == UpgradeMode::Security
            && !probe.classifies_security()
            && !self.cfg.options.azure_linux_security_as_all
        {
            return Err(Halt::SecurityUnclassified {
                node: name,
                left: self.left_before_cordon(rec, i).await,
            }
            .into());
        }
        rec.nodes[i].kernel_before.get_or_insert(probe.running_kernel.clone());
        let mut after = probe.clone();
        if rec.nodes[i].state == NodeState::Pending {
            let security = probe.security_packages();
            let mode = effective_mode(asked, &probe);
            if mode != asked {
                self.step(&name, NodeStep::SecurityAsAll);
            }
            match pm.upgrade_command(mode, self.cfg.dpkg_lock_timeout_secs, &security) {
                None => self.step(&name, NodeStep::NoSecurityUpdates),
                Some(_) if probe.pending.is_empty() => self.step(&name, NodeStep::NoUpdates),
                Some(cmd) => {
                    self.step(
                        &name,
                        NodeStep::Upgrading {
                            packages: probe.pending_count(),
                            mode,
                            manager: pm,
                        },
                    );
                    self.run_upgrade(rec, i, node, &cmd, pm).await?;
                    after = match self.transport.probe(node).await {
                        Ok(p) => p,
                        Err(error) => {
                            return Err(Halt::Probe {
                                node: name,
                                after_upgrade: true,
                                error,
                                left: self.left_as_is(rec, i),
                            }
                            .into())
                        }
                    };
                }
            }
            rec.nodes[i].state = NodeState::Upgraded;
            self.save(rec);
        }
        // Patched means: the upgrade succeeded (in this run or the one resumed) and nothing
        // of the chosen mode is pending any more.
        let left = pending_of(self.cfg.options.upgrade_mode, &after);
        if !left.is_empty() {
            return Err(Halt::StillPending {
                node: name,
                mode: self.cfg.options.upgrade_mode,
                packages: left,
                left: self.left_before_cordon(rec, i).await,
            }
            .into());
        }
        Ok(after)
    }

    /// Run the upgrade detached on the node and wait for it. A signal never cuts apt off: the
    /// first Ctrl-C waits for it to finish, a second one stops waiting (apt goes on, and the
    /// run says so).
    async fn run_upgrade(
        &mut self,
        rec: &mut RunRecord,
        i: usize,
        node: &NodeTarget,
        cmd: &str,
        pm: PackageManager,
    ) -> Result<(), RunStop> {
        let name = node.name.clone();
        let run_id = self.cfg.run_id.clone();
        let (log_path, _) = node::detached::upgrade_files(&run_id);
        self.begin(rec, i, StepName::Upgrade);
        if !rec.nodes[i].in_hand {
            if let Some(stop) = self.record_stop(&format!("not upgrading node {name}")) {
                self.end(rec, i, StepOutcome::Skipped, "the run record cannot be written");
                return Err(stop);
            }
        }
        if let Err(error) = self.transport.start_upgrade(node, cmd, &run_id).await {
            self.end(rec, i, StepOutcome::Failed, error.to_string());
            return Err(Halt::StartUpgrade {
                node: name,
                error,
                left: self.left_as_is(rec, i),
            }
            .into());
        }
        let deadline = Instant::now() + self.cfg.upgrade_timeout;
        self.wait_started(&name, Wait::Upgrade { manager: pm }, self.cfg.upgrade_timeout);
        let mut failures = 0u32;
        let mut told = false;
        let mut lock_held = false;
        let mut first_look = true;
        let outcome = loop {
            if self.abandon.is_cancelled() {
                break Err(UpgradeUnfinished::Abandoned);
            }
            if self.cancel.is_cancelled() && !told {
                told = true;
                self.step(&name, NodeStep::InterruptedDuringUpgrade { manager: pm });
            }
            if Instant::now() >= deadline {
                break Err(UpgradeUnfinished::TimedOut {
                    after: self.cfg.upgrade_timeout,
                });
            }
            // Behind a held dpkg lock (and at the first look, to find out), look more often:
            // the status line says who holds it.
            let poll = if lock_held || first_look {
                self.cfg.upgrade_poll.min(LOCK_WAIT_POLL)
            } else {
                self.cfg.upgrade_poll
            };
            let waited = tokio::select! {
                r = self.transport.wait_upgrade(node, &run_id, poll) => Some(r),
                _ = self.abandon.cancelled() => None,
            };
            match waited {
                None => continue,
                Some(Ok(Some(done))) => break Ok(done),
                Some(Ok(None)) => {
                    failures = 0;
                    first_look = false;
                    let wait = self.transport.upgrade_lock_wait(node);
                    let detail = match &wait {
                        Some(w) => Some(WaitDetail::PackageLock(w.clone())),
                        None if lock_held => Some(WaitDetail::Upgrading { manager: pm }),
                        None => None,
                    };
                    if let Some(detail) = detail {
                        self.tell(Event::WaitProgress {
                            node: name.clone(),
                            detail,
                        });
                    }
                    lock_held = wait.is_some();
                }
                // The connection was cut (a signal to our process group, a network blip):
                // apt goes on detached; connect again and keep waiting.
                Some(Err(e)) => {
                    tracing::debug!("waiting for the upgrade on {name}: {e}; reconnecting");
                    self.transport.disconnect(node).await;
                    failures += 1;
                    if failures > 5 && !self.cancel.is_cancelled() {
                        break Err(UpgradeUnfinished::ConnectionLost { error: e });
                    }
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
            }
        };
        self.wait_done(&name);
        let (log, code) = match outcome {
            Ok(v) => v,
            Err(why) => {
                let stopped = UpgradeStopped {
                    node: name,
                    manager: pm,
                    log: log_path,
                    why,
                    left: self.left_as_is(rec, i),
                };
                self.end(rec, i, StepOutcome::Failed, stopped.to_string());
                if self.abandon.is_cancelled() {
                    self.tell(Event::Warning(Warning::UpgradeAbandoned(stopped)));
                    return Err(RunStop::Interrupted);
                }
                return Err(Halt::Upgrade(stopped).into());
            }
        };
        let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
        rec.nodes[i].upgrade_output = lines[lines.len().saturating_sub(40)..].join("\n");
        if code != 0 {
            self.end(rec, i, StepOutcome::Failed, format!("{} exited with {code}", pm.tool()));
            return Err(Halt::UpgradeExited {
                node: name,
                manager: pm,
                code,
                last: pm.error_line(&log).filter(|l| !l.is_empty()),
                left: self.left_as_is(rec, i),
            }
            .into());
        }
        let pkgs = pm.parse_upgrade_output(&log);
        rec.nodes[i].packages_upgraded = pkgs
            .iter()
            .map(|p| UpgradedPackage {
                name: p.name.clone(),
                version: p.version.clone(),
            })
            .collect();
        self.end(rec, i, StepOutcome::Ok, format!("{} package(s) upgraded", pkgs.len()));
        self.step(&name, NodeStep::PackagesUpgraded { count: pkgs.len() });
        Ok(())
    }

    /// Step 2: does the node reboot?
    fn decide_reboot(&self, rec: &RunRecord, i: usize, after: &Probe) -> bool {
        let name = &rec.nodes[i].name;
        let needs = after.reboot_required;
        let reboot = match self.cfg.options.reboot {
            RebootPolicy::Always => !rec.nodes[i].rebooted || needs,
            RebootPolicy::Never => false,
            RebootPolicy::IfRequired => needs,
        };
        if reboot {
            if !after.reboot_packages.is_empty() {
                self.step(
                    name,
                    NodeStep::RebootRequiredBy {
                        packages: after.reboot_packages.clone(),
                    },
                );
            }
        } else if needs {
            self.step(name, NodeStep::RebootRequiredButNever);
        } else {
            self.step(name, NodeStep::NoRebootRequired);
        }
        reboot
    }

    /// Step 3: nothing else may be out before this node is taken out.
    async fn health_gate(
        &mut self,
        rec: &mut RunRecord,
        i: usize,
        workloads: &[WorkloadRef],
        pdbs: &[(String, String)],
    ) -> Result<(), RunStop> {
        let name = rec.nodes[i].name.clone();
        // First nothing else may be out (a node that died would also keep the last
        // drain's budgets from recovering), then those budgets must allow disruptions
        // again, then once more nothing else may be out.
        self.gate_step(rec, i, workloads).await?;
        if pdbs.is_empty() {
            return Ok(());
        }
        self.step(&name, NodeStep::WaitingForPdbs { count: pdbs.len() });
        let timeout = Duration::from_secs(self.cfg.options.drain_timeout);
        self.wait_started(&name, Wait::PdbsRecover, timeout);
        let r = tokio::select! {
            r = self.cluster.wait_pdbs(pdbs, timeout) => Some(r),
            _ = self.cancel.cancelled() => None,
        };
        self.wait_done(&name);
        match r {
            Some(Ok(())) => {}
            None => return self.stop_before_cordon(rec, i).await.map(|_| ()),
            Some(Err(_)) if self.cancel.is_cancelled() => return self.stop_before_cordon(rec, i).await.map(|_| ()),
            Some(Err(error)) => {
                let release = self.release_if_in_hand(rec, i).await;
                return Err(Halt::PdbsNotRecovered {
                    node: name,
                    error,
                    release,
                }
                .into());
            }
        }
        self.gate_step(rec, i, workloads).await
    }

    /// The health gate, waited for, as a step of the record.
    async fn gate_step(&mut self, rec: &mut RunRecord, i: usize, workloads: &[WorkloadRef]) -> Result<(), RunStop> {
        let name = rec.nodes[i].name.clone();
        self.begin(rec, i, StepName::HealthGate);
        let exempt = vec![name.clone()];
        let r = wait_gate(
            self.cluster,
            &exempt,
            workloads,
            self.cfg.gate_wait,
            self.cfg.gate_poll,
            &self.cancel,
            self.progress,
        )
        .await;
        match r {
            Ok(()) => {
                self.end(rec, i, StepOutcome::Ok, "");
                Ok(())
            }
            Err(GateStop::Cancelled) => {
                self.end(rec, i, StepOutcome::Skipped, "interrupted");
                self.stop_before_cordon(rec, i).await.map(|_| ())
            }
            Err(gate) => {
                self.end(rec, i, StepOutcome::Failed, gate.to_string());
                let release = self.release_if_in_hand(rec, i).await;
                Err(Halt::Unhealthy {
                    node: name,
                    gate,
                    release,
                }
                .into())
            }
        }
    }

    /// Just before the cordon: the pods the drain would evict must have somewhere to go (the
    /// cluster may have changed since the pre-flight: a node cordoned by hand), unless
    /// `--allow-pending-pods`. Refused as the pre-flight refuses, the node not taken out.
    async fn pods_gate(&mut self, rec: &mut RunRecord, i: usize) -> Result<(), RunStop> {
        let name = rec.nodes[i].name.clone();
        let stranded = match self.cluster.stranded_pods(&name, &self.cfg.drain).await {
            Ok(s) => s,
            Err(error) => {
                let release = self.release_if_in_hand(rec, i).await;
                return Err(Halt::PodsUnknown {
                    node: name,
                    error,
                    release,
                }
                .into());
            }
        };
        if stranded.is_empty() {
            return Ok(());
        }
        if self.cfg.options.allow_pending_pods {
            self.tell(Event::Warning(Warning::PendingPodsAllowed { node: name, stranded }));
            return Ok(());
        }
        let text = super::preflight::nowhere_to_go_text(&name, &stranded);
        let release = self.release_if_in_hand(rec, i).await;
        Err(RunStop::Refused(format!(
            "not taking node {name} out: {text}{}; its packages are upgraded; {}",
            super::stop::AndRelease(&release),
            super::preflight::PENDING_PODS_HINT
        )))
    }

    /// Steps 4 to 6: cordon (and mark), drain, reboot; then [`Engine::finish_reboot`].
    async fn take_out_and_reboot(&mut self, rec: &mut RunRecord, i: usize, row: &NodeRow) -> Result<NodeEnd, RunStop> {
        self.cordon(rec, i, row).await?;
        self.drain(rec, i).await?;
        if self.cancel.is_cancelled() {
            let name = rec.nodes[i].name.clone();
            let release = self.release(rec, i).await;
            self.step(&name, NodeStep::StoppedBeforeReboot(release));
            return Err(RunStop::Interrupted);
        }
        self.reboot(rec, i, row).await?;
        let name = rec.nodes[i].name.clone();
        let row = self
            .cluster
            .node(&name)
            .await
            .ok()
            .flatten()
            .unwrap_or_else(|| row.clone());
        let next = self.next_download().await;
        let prefetch = download_ahead(self.transport, self.progress, next);
        let (done, ()) = tokio::join!(self.finish_reboot(rec, i, &row), prefetch);
        done
    }

    /// What to download on the next node while this one reboots (nothing is installed,
    /// nothing is disrupted: its upgrade is then install time only): the command of the
    /// package manager its OS SKU label says (apt when unlabelled).
    async fn next_download(&self) -> Option<(NodeTarget, String)> {
        let mode = self.cfg.options.upgrade_mode;
        if mode == UpgradeMode::Security {
            return None;
        }
        let row = self.cluster.node(self.next.as_deref()?).await.ok().flatten()?;
        PackageManager::from_os_sku(row.os_sku.as_deref())
            .download_command(mode, self.cfg.dpkg_lock_timeout_secs)
            .map(|cmd| (target(&row), cmd))
    }

    /// Step 4: cordon (remembering whether somebody else had) and mark the node as ours.
    async fn cordon(&mut self, rec: &mut RunRecord, i: usize, row: &NodeRow) -> Result<(), RunStop> {
        let name = rec.nodes[i].name.clone();
        self.fence("cordoning").await?;
        if !rec.nodes[i].in_hand {
            rec.nodes[i].boot_id_before = row.boot_id.clone();
            rec.nodes[i].was_cordoned = row.unschedulable;
            self.save(rec);
        }
        self.begin(rec, i, StepName::Cordon);
        if !rec.nodes[i].in_hand {
            // Not out of service yet: a safe point. Its packages are upgraded.
            if let Some(stop) = self.record_stop(&format!("not cordoning node {name}")) {
                self.end(rec, i, StepOutcome::Skipped, "the run record cannot be written");
                return Err(stop);
            }
        }
        if let Err(error) = self.cluster.cordon(&name, &self.cfg.run_id).await {
            self.end(rec, i, StepOutcome::Failed, error.to_string());
            let release = self.release_if_in_hand(rec, i).await;
            return Err(Halt::Cordon {
                node: name,
                error,
                release,
            }
            .into());
        }
        rec.nodes[i].in_hand = true;
        rec.nodes[i].state = NodeState::Cordoned;
        let cordoned_before = rec.nodes[i].was_cordoned;
        self.end(
            rec,
            i,
            StepOutcome::Ok,
            if cordoned_before {
                "already cordoned before aks-patch; it stays cordoned"
            } else {
                ""
            },
        );
        self.step(&name, NodeStep::Cordoned { cordoned_before });
        Ok(())
    }

    /// Step 5: drain, proving the lock before every eviction.
    async fn drain(&mut self, rec: &mut RunRecord, i: usize) -> Result<(), RunStop> {
        let name = rec.nodes[i].name.clone();
        self.begin(rec, i, StepName::Drain);
        let progress = self.progress;
        let node = name.clone();
        let tell = move |event: DrainEvent| {
            progress.tell(Event::Drain {
                node: node.clone(),
                event,
            })
        };
        self.wait_started(&name, Wait::Evictions, self.cfg.drain.timeout);
        let drained = self
            .cluster
            .drain(&name, &self.cfg.drain, &tell, &self.cancel, self.fence)
            .await;
        self.wait_done(&name);
        match drained {
            Ok(report) => {
                for (pod, w) in &report.warnings {
                    self.tell(Event::Warning(Warning::DrainWarning {
                        node: name.clone(),
                        pod: pod.to_string(),
                        warning: w.to_string(),
                    }));
                }
                rec.nodes[i].evicted = report
                    .evicted
                    .iter()
                    .map(|p| ObjectRef::new(&p.namespace, &p.name))
                    .collect();
                rec.nodes[i].pdbs = report.pdbs.iter().map(|(ns, n)| ObjectRef::new(ns, n)).collect();
                rec.nodes[i].workloads = report.workloads.clone();
                rec.nodes[i].state = NodeState::Drained;
                self.end(
                    rec,
                    i,
                    StepOutcome::Ok,
                    format!(
                        "{} pod(s) evicted in {:.1}s",
                        report.evicted.len(),
                        report.elapsed.as_secs_f64()
                    ),
                );
                self.step(
                    &name,
                    NodeStep::Drained {
                        evicted: report.evicted.len(),
                    },
                );
                Ok(())
            }
            Err(stop) => {
                let text = match &stop {
                    DrainStop::Cancelled => "interrupted".to_string(),
                    DrainStop::Fenced(r) => r.clone(),
                    DrainStop::Failed(e) => e.to_string(),
                };
                self.end(rec, i, StepOutcome::Failed, text);
                // A drain that did not finish: put the node back in service (unless it was cordoned before us).
                let release = self.release(rec, i).await;
                Err(match stop {
                    DrainStop::Cancelled => {
                        self.step(&name, NodeStep::DrainInterrupted(release));
                        RunStop::Interrupted
                    }
                    DrainStop::Fenced(reason) => {
                        self.step(&name, NodeStep::DrainStopped(release));
                        self.lost(format!("stopped draining node {name}: {reason}"))
                    }
                    DrainStop::Failed(error) => Halt::Drain {
                        node: name,
                        error,
                        release,
                    }
                    .into(),
                })
            }
        }
    }

    /// Step 6: reboot, the lock proven once more; the connection dropping is expected.
    async fn reboot(&mut self, rec: &mut RunRecord, i: usize, row: &NodeRow) -> Result<(), RunStop> {
        let name = rec.nodes[i].name.clone();
        if let Err(stop) = self.fence("rebooting").await {
            let release = self.release(rec, i).await;
            self.step(&name, NodeStep::NotRebootingLockLost(release));
            return Err(stop);
        }
        self.begin(rec, i, StepName::Reboot);
        if let Err(error) = self.transport.reboot(&target(row)).await {
            self.end(rec, i, StepOutcome::Failed, error.to_string());
            let release = self.release(rec, i).await;
            return Err(Halt::Reboot {
                node: name,
                error,
                release,
            }
            .into());
        }
        rec.nodes[i].state = NodeState::Rebooting;
        self.end(rec, i, StepOutcome::Ok, "reboot scheduled");
        self.step(&name, NodeStep::Rebooting);
        Ok(())
    }

    /// Step 7: wait for the reboot to be proven (new bootID, Ready, taints gone), verify the
    /// marker, the kernel and that nothing is pending, put the node back.
    async fn finish_reboot(&mut self, rec: &mut RunRecord, i: usize, row: &NodeRow) -> Result<NodeEnd, RunStop> {
        let name = rec.nodes[i].name.clone();
        let old_boot = rec.nodes[i]
            .boot_id_before
            .clone()
            .or_else(|| row.boot_id.clone())
            .unwrap_or_default();
        let started = Instant::now();
        self.begin(rec, i, StepName::WaitReady);
        if self.cancel.is_cancelled() {
            self.step(&name, NodeStep::InterruptedWhileRebooting);
        }
        let progress = self.progress;
        let n2 = name.clone();
        let booted = std::sync::Arc::new(tokio::sync::Notify::new());
        let booted_tx = booted.clone();
        let tell = move |event: RebootEvent| {
            if let RebootEvent::Booted { .. } = event {
                booted_tx.notify_one();
            }
            progress.tell(Event::Reboot {
                node: n2.clone(),
                event,
            })
        };
        let timeout = Duration::from_secs(self.cfg.options.reboot_timeout);
        self.wait_started(&name, Wait::Ready, timeout);
        // The check after the reboot (marker, kernel, pending updates) does not depend on
        // Ready: it runs as soon as the node has booted, while its kubelet gets Ready, so
        // that the node is put back the moment it is Ready. If it fails then (SSH not up
        // yet), it runs again once the node is Ready.
        let (back, early_probe) = {
            let early_target = target(row);
            let transport = self.transport;
            let early = async {
                booted.notified().await;
                transport.probe(&early_target).await
            };
            let wait = self.cluster.wait_for_reboot(&name, &old_boot, timeout, &tell);
            tokio::pin!(early, wait);
            let mut early_probe = None;
            loop {
                tokio::select! {
                    r = &mut wait => break (r, early_probe),
                    p = &mut early, if early_probe.is_none() => early_probe = Some(p),
                }
            }
        };
        self.wait_done(&name);
        let back = match back {
            Ok(r) => r,
            Err(error) => {
                self.end(rec, i, StepOutcome::Failed, error.to_string());
                return Err(Halt::NotBack { error }.into());
            }
        };
        rec.nodes[i].rebooted = true;
        rec.nodes[i].boot_id_after = back.boot_id.clone();
        rec.nodes[i].kernel_after = Some(back.kernel_version.clone());
        rec.nodes[i].state = NodeState::Back;
        self.end(
            rec,
            i,
            StepOutcome::Ok,
            format!("new bootID, kernel {}", back.kernel_version),
        );

        // The proof: the marker gone (on Azure Linux `needs-restarting -r` clean) and nothing
        // of the run's mode pending, observed after the reboot. Without it the node is never
        // reported patched.
        self.begin(rec, i, StepName::Verify);
        let node = target(&back);
        let probed = match early_probe {
            Some(Ok(p)) => Ok(p),
            _ => self.probe_after_reboot(&node, started + timeout).await,
        };
        let proven = match probed {
            Ok(p) => {
                rec.nodes[i].kernel_after = Some(p.running_kernel.clone());
                RebootProof::new(&old_boot, &back, &p, self.cfg.options.upgrade_mode)
            }
            Err(error) => {
                // Ready with a new bootID, but unchecked: capacity comes back (the node is
                // uncordoned), the node is recorded unproven, and the run stops on it.
                self.tell(Event::Warning(Warning::CannotCheckAfterReboot {
                    node: name.clone(),
                    error: error.to_string(),
                }));
                self.end(rec, i, StepOutcome::Failed, error.to_string());
                let release = self.release(rec, i).await;
                self.step(&name, NodeStep::Released(release.clone()));
                let unchecked = |release| Unproven::Unchecked {
                    boot_id: back.boot_id.clone(),
                    timeout,
                    error: error.clone(),
                    release,
                };
                if !release.put_back() {
                    return Err(Halt::NotPutBack {
                        node: name,
                        release,
                        unproven: Some(unchecked(None)),
                    }
                    .into());
                }
                return Ok(NodeEnd::Unproven(unchecked(Some(release))));
            }
        };
        match &proven {
            Ok(p) => self.end(rec, i, StepOutcome::Ok, format!("marker gone, running {}", p.kernel())),
            Err(no) => {
                self.tell(Event::Warning(Warning::NotProvenAfterReboot {
                    node: name.clone(),
                    no: no.clone(),
                }));
                self.end(rec, i, StepOutcome::Warning, no.to_string());
            }
        }
        let release = self.release(rec, i).await;
        self.step(&name, NodeStep::Released(release.clone()));
        if !release.put_back() {
            return Err(Halt::NotPutBack {
                node: name,
                release,
                unproven: None,
            }
            .into());
        }
        match proven {
            Ok(p) => Ok(NodeEnd::Done(Proof::Rebooted(p))),
            // Never patched while it still needs a reboot or has updates of its mode
            // pending: the resume redoes it.
            Err(no) => Err(Halt::NotPatchedAfterReboot { node: name, no }.into()),
        }
    }

    /// Probe a node after its reboot, again with backoff while the transport fails, until
    /// `deadline` (one attempt at least). A signal stops the attempts.
    async fn probe_after_reboot(&self, node: &NodeTarget, deadline: Instant) -> Result<Probe, PortError> {
        let mut pause = PROBE_RETRY_FIRST;
        let mut attempts = 0u32;
        loop {
            self.transport.disconnect(node).await;
            attempts += 1;
            // One attempt may outlast the deadline a little (a slow probe is not cut off
            // below PROBE_ATTEMPT_MIN), never by a hung transport's own timeout.
            let left = deadline
                .saturating_duration_since(Instant::now())
                .max(PROBE_ATTEMPT_MIN);
            let e = match tokio::time::timeout(left, self.transport.probe(node)).await {
                Ok(Ok(p)) => return Ok(p),
                Ok(Err(e)) => e,
                Err(_) => PortError::new(format!(
                    "the probe of node {} did not answer within {}s",
                    node.name,
                    left.as_secs()
                )),
            };
            let now = Instant::now();
            if now >= deadline || self.cancel.is_cancelled() || e.auth {
                return Err(PortError {
                    message: format!(
                        "{}{}",
                        e.message,
                        if attempts > 1 {
                            format!(" ({attempts} attempts)")
                        } else {
                            String::new()
                        }
                    ),
                    auth: e.auth,
                });
            }
            let wait = pause.min(deadline - now);
            if attempts == 1 {
                self.step(
                    &node.name,
                    NodeStep::CannotCheckYet {
                        error: e.to_string(),
                        for_up_to: deadline - now,
                    },
                );
            }
            self.tell(Event::Detail(Detail::ProbeAfterRebootFailed {
                node: node.name.clone(),
                error: e.to_string(),
                retry_in: wait,
            }));
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.cancel.cancelled() => {}
            }
            pause = (pause * 2).min(PROBE_RETRY_MAX);
        }
    }

    /// Resuming a node that rebooted but was not proven patched: prove it first, without
    /// cordoning or rebooting it again. Done with the proof; unproven still while it cannot
    /// be reached or is not Ready; failed (redone from the upgrade by the next resume) when
    /// the check says it is not patched.
    async fn prove_unproven(&mut self, rec: &mut RunRecord, i: usize, row: &NodeRow) -> Result<NodeEnd, RunStop> {
        let name = rec.nodes[i].name.clone();
        self.step(&name, NodeStep::Resuming(Resumed::Unproven));
        let old_boot = rec.nodes[i].boot_id_before.clone().unwrap_or_default();
        self.begin(rec, i, StepName::Verify);
        let node = target(row);
        let within = Duration::from_secs(self.cfg.options.reboot_timeout).min(PROVE_AGAIN_WITHIN);
        let probe = match self.probe_after_reboot(&node, Instant::now() + within).await {
            Ok(p) => p,
            Err(error) => {
                self.end(rec, i, StepOutcome::Failed, error.to_string());
                return Ok(NodeEnd::Unproven(Unproven::StillUnchecked { error }));
            }
        };
        rec.nodes[i].kernel_after = Some(probe.running_kernel.clone());
        match RebootProof::new(&old_boot, row, &probe, self.cfg.options.upgrade_mode) {
            Ok(p) => {
                rec.nodes[i].boot_id_after = Some(p.boot_id_after().to_string());
                self.end(rec, i, StepOutcome::Ok, format!("marker gone, running {}", p.kernel()));
                self.step(
                    &name,
                    NodeStep::Proven {
                        kernel: p.kernel().to_string(),
                    },
                );
                Ok(NodeEnd::Done(Proof::Rebooted(p)))
            }
            Err(NoProof::NotReady) => {
                self.end(rec, i, StepOutcome::Failed, "not Ready");
                Ok(NodeEnd::Unproven(Unproven::NotReady))
            }
            Err(no) => {
                self.end(rec, i, StepOutcome::Failed, no.to_string());
                Err(Halt::NotPatchedOnResume { node: name, no }.into())
            }
        }
    }

    /// Stop at a safe point before the cordon, with the node in hand put back first.
    async fn stop_before_cordon(&mut self, rec: &mut RunRecord, i: usize) -> Result<NodeEnd, RunStop> {
        let name = rec.nodes[i].name.clone();
        let release = self.release_if_in_hand(rec, i).await;
        self.step(&name, NodeStep::StoppedBeforeCordon { release });
        Err(RunStop::Interrupted)
    }

    /// Put the node back if the run has it in hand.
    async fn release_if_in_hand(&self, rec: &mut RunRecord, i: usize) -> Option<Release> {
        if rec.nodes[i].in_hand {
            Some(self.release(rec, i).await)
        } else {
            None
        }
    }

    /// Step 8: put the node back: remove our mark, and uncordon it unless it was cordoned
    /// before aks-patch came.
    async fn release(&self, rec: &mut RunRecord, i: usize) -> Release {
        let node = rec.nodes[i].name.clone();
        let uncordon = !rec.nodes[i].was_cordoned;
        match self.cluster.release(&node, uncordon).await {
            Ok(()) => {
                rec.nodes[i].in_hand = false;
                rec.nodes[i].steps.push(Step {
                    name: if uncordon { StepName::Uncordon } else { StepName::Unmark },
                    started_at: self.now(),
                    finished_at: Some(self.now()),
                    outcome: StepOutcome::Ok,
                    detail: String::new(),
                });
                self.save(rec);
                if uncordon {
                    Release::Uncordoned { node }
                } else {
                    Release::StaysCordoned { node }
                }
            }
            Err(error) => {
                self.save(rec);
                Release::Failed { node, error }
            }
        }
    }

    /// Between nodes: soak before the next node, if there is one.
    async fn between_nodes(&mut self, rec: &RunRecord, i: usize) -> Result<(), RunStop> {
        let more = rec.nodes[i + 1..]
            .iter()
            .any(|n| !matches!(n.state, NodeState::Done | NodeState::Skipped | NodeState::Gone));
        if !more {
            return Ok(());
        }
        let soak = self.cfg.options.soak;
        if soak > 0 {
            self.step(&rec.nodes[i].name, NodeStep::Soaking { secs: soak });
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(soak)) => {}
                _ = self.cancel.cancelled() => return Err(RunStop::Interrupted),
            }
        }
        Ok(())
    }
}

/// The order in which a run visits its record's nodes: those out of service (in hand,
/// rebooting, back from a reboot) and those rebooted but unproven first, then the others in the plan's order.
fn resume_order(rec: &RunRecord) -> Vec<usize> {
    let (mut first, rest): (Vec<usize>, Vec<usize>) =
        (0..rec.nodes.len()).partition(|i| first_on_resume(&rec.nodes[*i]));
    first.extend(rest);
    first
}

/// Download the next node's packages ahead (see [`Engine::next_download`]); a failure changes
/// nothing (its upgrade downloads them).
async fn download_ahead(transport: &dyn Transport, progress: &dyn Progress, next: Option<(NodeTarget, String)>) {
    let Some((t, cmd)) = next else { return };
    match transport.prefetch(&t, &cmd).await {
        Ok(()) => progress.tell(Event::Step {
            node: t.name,
            step: NodeStep::PackagesDownloadedAhead,
        }),
        Err(e) => progress.tell(Event::Detail(Detail::PrefetchFailed {
            node: t.name,
            error: e.to_string(),
        })),
    }
}

#[cfg(test)]
mod tests {
    //! The engine against fakes of the cluster, the nodes and the lock, on paused tokio time:
    //! every transition, failures at every step, resume from every state, signals at the
    //! safe points. The fakes keep one small world and check "never two nodes out" on every
    //! change.
    use super::*;
    use crate::kube::drain::{DrainReport, PodRef};
    use crate::node::{PackageManager, PendingUpdate};
    use crate::rollout::gate::Blocker;
    use crate::rollout::journal::{enum_text, Journal, NodeRecord, RunStatus};
    use crate::rollout::window::PausedClock;
    use async_trait::async_trait;
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

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
}
