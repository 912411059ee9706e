//! The rollout engine: node after node, each through its life ([`super::node_life`]):
//! `pending → upgraded → (done) | cordoned → drained → rebooting → back → done`, or into
//! `failed` (or `gone`, `unproven`). Every change of a node is written to the run record
//! before the next side effect, so `--resume`, Ctrl-C and the tests read one source of truth.
//!
//! Safe points, and what is checked there, in this order: the lock is ours (fencing, before
//! every cordon, eviction attempt and reboot), the health gate, the window and the blockers
//! (before every cordon: [`gates`]), a signal (between steps; apt is never cut off). The
//! engine reaches the world only through [`super::ports`], tells what it does through
//! [`super::progress`] and reads the time from a [`Clock`]: its tests drive it with fakes
//! and paused time.
//!
//! The loop over the nodes is here; each part of a node's turn has its file: the upgrade
//! ([`upgrade`]), the gates before a node is taken out ([`gates`]), cordon, drain and reboot
//! ([`take_out`]), the way back (proof and release: [`back`]), picking up a node an
//! interrupted run left ([`resumed`]), and the pending taint on the nodes still to do
//! ([`pending`]).

mod back;
mod batch;
mod gates;
mod pending;
mod resumed;
mod take_out;
mod upgrade;

#[cfg(test)]
mod tests;

use super::batches::BatchRules;
use super::blockers::BlockerSource;
use super::gate::Budget;
use super::journal::{self, NodeRecord, RunOptions, RunRecord, StepName, StepOutcome};
use super::node_life::{finished, NodeLife};
use super::ports::{Cluster, Fence, NodeTarget, RecordStore, Transport};
use super::progress::{Detail, Event, NodeStep, Progress, Wait, Warning};
use super::proof::Proof;
use super::stop::{Halt, RunStop, Unproven};
use super::window::{Clock, Schedule};
use crate::kube::drain::{DrainOptions, WorkloadRef};
use crate::kube::{NodeInfo, ObjectRef};
use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The engine's settings beyond the run options.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub options: RunOptions,
    pub drain: DrainOptions,
    /// `--max-unavailable`: nodes go out in batches (`None`: one at a time).
    pub batches: Option<BatchRules>,
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
            batches: None,
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
/// back (`budget`) before its window closes. The engine reads the time from its own clock
/// ([`Ports::clock`]); `clock` is the one the command's checks before the run read.
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
pub type NodeHook = std::sync::Arc<dyn Fn(NodePhase, &NodeRecord, Option<&str>) + Send + Sync>;

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
    lock_lost: Mutex<Option<String>>,
    /// The node after the one in hand: its packages are downloaded while this one reboots.
    next: Mutex<Option<String>>,
    /// `--max-unavailable`: the nodes expected after those in flight, taken from the end;
    /// each node of the batch works on one of them while it reboots
    /// ([`take_out::Ahead`]).
    ahead: Mutex<Vec<take_out::Ahead>>,
    /// Held by whoever upgrades a node: its turn, from its start to its end, or a node of
    /// its batch upgrading it ahead. A turn waits for an upgrade ahead of it to end; an
    /// upgrade ahead never starts beside a turn.
    upgrading: Mutex<BTreeMap<usize, std::sync::Arc<tokio::sync::Mutex<()>>>>,
    /// The maintenance windows, if the run keeps to any.
    window: Option<WindowPolicy>,
    /// The operator's blockers, if any.
    blockers: Option<BlockerPolicy>,
    /// Told about each node's turn (notifications).
    on_node: Option<NodeHook>,
    /// Why no node but those left out of service may be started (a resume that the
    /// pre-flight would have refused, a batch's upgrade ahead that failed): the run stops
    /// with it before the first such node.
    hold_others: Mutex<Option<RunStop>>,
    /// The first write of the run record that failed (where the record is, the cause, what to do): the
    /// run stops at the next safe point, finishing the node in hand first.
    record_failed: std::sync::OnceLock<(String, String, String)>,
    /// The nodes that may carry this run's pending taint ([`pending`]).
    pending: Mutex<Vec<String>>,
}

/// How a node's turn ended, when it did not stop the run.
enum NodeEnd {
    /// Patched: only with its proof.
    Done(Proof),
    Gone,
    /// Back from its reboot (a new bootID, Ready) and put back in service, but the check
    /// after the reboot could not be made: why. The run stops on it.
    Unproven(Unproven),
}

/// What the last drain evicted: its workloads Ready again, and its PDBs allowing
/// disruptions again, before the next node is taken out (its upgrade may go ahead).
#[derive(Debug, Default)]
struct LastDrain {
    workloads: Vec<WorkloadRef>,
    pdbs: Vec<ObjectRef>,
}

/// How many nodes were started so far, of how many to do.
#[derive(Debug, Clone, Copy)]
struct Count {
    started: usize,
    total: usize,
}

/// How a node's turn ended, when the run goes on.
struct TurnEnded {
    /// Patched (with its proof).
    done: bool,
    /// What its drain evicted, if it was drained.
    drained: Option<LastDrain>,
}

/// A node's turn: its life, and the run record that it is written into (the life is
/// written back whenever the record is saved, and when the turn ends). The record is shared
/// by the turns of a batch, which run at once.
struct Turn<'r> {
    life: NodeLife,
    run: &'r Mutex<RunRecord>,
    index: usize,
    /// The batch the node is taken out with (`None`: one at a time).
    batch: Option<&'r batch::InBatch>,
}

impl<'r> Turn<'r> {
    fn new(run: &'r Mutex<RunRecord>, index: usize, batch: Option<&'r batch::InBatch>) -> Turn<'r> {
        let life = NodeLife::new(lock(run).nodes[index].clone());
        Turn {
            life,
            run,
            index,
            batch,
        }
    }

    fn name(&self) -> String {
        self.life.name().to_string()
    }

    /// How many nodes may be out with this one.
    fn budget(&self) -> Budget {
        self.batch
            .and_then(|b| b.budgets.get(self.life.name()).cloned())
            .unwrap_or_else(Budget::one)
    }

    /// The run record, with the node's life as it is now (held until the guard is dropped:
    /// never across an await).
    fn record(&self) -> MutexGuard<'r, RunRecord> {
        let mut run = lock(self.run);
        run.nodes[self.index] = self.life.record().clone();
        run
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        drop(self.record());
    }
}

/// The engine's own state behind a lock: held for a read or a write, never across an await.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub(super) fn target(row: &NodeInfo) -> NodeTarget {
    NodeTarget {
        name: row.name.clone(),
        address: row.internal_ip().unwrap_or_default().to_string(),
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
            lock_lost: Mutex::new(None),
            next: Mutex::new(None),
            ahead: Mutex::new(vec![]),
            upgrading: Mutex::new(BTreeMap::new()),
            window: None,
            blockers: None,
            on_node: None,
            hold_others: Mutex::new(None),
            record_failed: std::sync::OnceLock::new(),
            pending: Mutex::new(vec![]),
        }
    }

    /// Finish only the nodes left out of service, then stop with `stop` before any other.
    pub fn with_hold_others(mut self, stop: RunStop) -> Engine<'a> {
        self.hold_others = Mutex::new(Some(stop));
        self
    }

    /// Tell `hook` about each node's start, end and halt.
    pub fn with_node_hook(mut self, hook: NodeHook) -> Engine<'a> {
        self.on_node = Some(hook);
        self
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

    /// Why the lock was lost, if it was during the run.
    pub fn lock_lost(&self) -> Option<String> {
        lock(&self.lock_lost).clone()
    }

    /// Patch every node of the record that is not finished yet, in order. The nodes to do
    /// carry the pending taint from here; whatever ends the run, none does after it.
    pub async fn run(&self, rec: &mut RunRecord) -> Result<(), RunStop> {
        self.mark_pending(rec).await;
        let shared = Mutex::new(rec.clone());
        let result = self.run_nodes(&shared).await;
        *rec = shared.into_inner().unwrap_or_else(std::sync::PoisonError::into_inner);
        self.clear_pending().await;
        self.tell(Event::RunOver);
        result
    }

    async fn run_nodes(&self, shared: &Mutex<RunRecord>) -> Result<(), RunStop> {
        let mut last = LastDrain::default();
        let todo = |i: usize| !finished(lock(shared).nodes[i].state);
        // A resumed run first finishes the nodes the interrupted run left out of service, so
        // that they are back before anything (a health gate, a window) can stop this run.
        let order = resumed::resume_order(&lock(shared));
        let total = order.iter().filter(|i| todo(**i)).count();
        let mut count = Count { started: 0, total };
        let Some(rules) = self.cfg.batches.clone() else {
            return self.one_at_a_time(shared, &order, &mut count, &mut last).await;
        };
        // Batches: the nodes an interrupted run left out of service first, together (they
        // went out together), then the others.
        let (left, rest): (Vec<usize>, Vec<usize>) = order
            .iter()
            .partition(|i| resumed::first_on_resume(&lock(shared).nodes[**i]));
        self.finish_left_out(shared, &left, &rules, &mut count, &mut last)
            .await?;
        self.run_batches(shared, &rest, &rules, &mut count, &mut last).await
    }

    /// The nodes of `order` still to do, one after the other.
    async fn one_at_a_time(
        &self,
        shared: &Mutex<RunRecord>,
        order: &[usize],
        count: &mut Count,
        last: &mut LastDrain,
    ) -> Result<(), RunStop> {
        let todo = |i: usize| !finished(lock(shared).nodes[i].state);
        for (pos, &i) in order.iter().enumerate() {
            if !todo(i) {
                continue;
            }
            self.checkpoint()?;
            // A node already out of service (a resumed run) is finished whatever the time;
            // a new one is started only if it should be back before the window closes.
            let (first, name) = {
                let rec = lock(shared);
                (resumed::first_on_resume(&rec.nodes[i]), rec.nodes[i].name.clone())
            };
            if !first {
                if let Some(stop) = lock(&self.hold_others).take() {
                    return Err(stop);
                }
                self.window_check(&format!("not starting node {name}"))?;
            }
            *lock(&self.next) = order[pos + 1..]
                .iter()
                .find(|j| todo(**j))
                .map(|j| lock(shared).nodes[*j].name.clone());
            count.started += 1;
            let ended = self.node_turn(shared, i, *count, last, None).await?;
            if let Some(drained) = ended.drained {
                *last = drained;
            }
            if ended.done {
                self.between_nodes(&name).await?;
            }
        }
        Ok(())
    }

    /// One node's turn, from its start to its record's last word: `Err` when the run stops
    /// on it.
    async fn node_turn(
        &self,
        shared: &Mutex<RunRecord>,
        i: usize,
        count: Count,
        last: &LastDrain,
        batch: Option<&batch::InBatch>,
    ) -> Result<TurnEnded, RunStop> {
        // After an upgrade ahead of this turn, if one is under way: the turn starts from
        // what it left in the record.
        let upgrading = self.upgrade_lock(i);
        let _upgrading = upgrading.lock().await;
        let mut turn = Turn::new(shared, i, batch);
        let node = turn.name();
        self.tell(Event::NodeStarted {
            node: node.clone(),
            index: count.started,
            total: count.total,
        });
        self.hook(NodePhase::Started, turn.life.record(), None);
        let result = self.patch_node(&mut turn, last).await;
        self.unpend(&node).await;
        self.wait_done(&node);
        let drained = self.end_turn(&mut turn, result)?;
        Ok(TurnEnded {
            done: matches!(turn.life.state(), journal::NodeState::Done),
            drained,
        })
    }

    /// The lock of node `i`'s upgrade (see [`Engine::upgrading`]).
    fn upgrade_lock(&self, i: usize) -> std::sync::Arc<tokio::sync::Mutex<()>> {
        lock(&self.upgrading).entry(i).or_default().clone()
    }

    /// Record how a node's turn ended; `Err` when the run stops on it, else what its drain
    /// evicted (to be Ready again before the next node is taken out), if it was drained.
    fn end_turn(&self, turn: &mut Turn<'_>, result: Result<NodeEnd, RunStop>) -> Result<Option<LastDrain>, RunStop> {
        let node = turn.name();
        match result {
            Ok(NodeEnd::Done(proof)) => {
                // The only way to `done`: with the proof, kept in the record.
                turn.life.done(&proof, self.now())?;
                self.save(turn);
                self.step(&node, NodeStep::Done);
                self.hook(NodePhase::Done, turn.life.record(), None);
                if turn.life.was_drained() {
                    let rec = turn.life.record();
                    return Ok(Some(LastDrain {
                        workloads: rec.workloads.clone(),
                        pdbs: rec.pdbs.clone(),
                    }));
                }
                Ok(None)
            }
            Ok(NodeEnd::Gone) => {
                turn.life.gone()?;
                self.save(turn);
                self.step(&node, NodeStep::Gone);
                Ok(None)
            }
            Ok(NodeEnd::Unproven(why)) => {
                turn.life.unproven(why.to_string(), self.now())?;
                self.save(turn);
                self.step(&node, NodeStep::Unproven);
                let stop = RunStop::from(Halt::Unproven { node, why });
                self.hook(NodePhase::Halted, turn.life.record(), Some(&stop.message()));
                Err(stop)
            }
            Err(stop) => {
                match &stop {
                    RunStop::Failed(_) | RunStop::Refused(_) | RunStop::KuredRebooting(_) => {
                        turn.life.failed(stop.message(), self.now())?
                    }
                    RunStop::LockLost(message) => turn.life.stopped(message.clone()),
                    RunStop::Interrupted
                    | RunStop::OutsideWindow(_)
                    | RunStop::Blocked(_)
                    | RunStop::RecordUnwritable(_)
                    | RunStop::Illegal(_) => {}
                }
                self.save(turn);
                if !matches!(stop, RunStop::Interrupted | RunStop::OutsideWindow(_)) {
                    self.hook(NodePhase::Halted, turn.life.record(), Some(&stop.message()));
                }
                Err(stop)
            }
        }
    }

    /// One node's turn, up to its proof (or why it ended otherwise).
    async fn patch_node(&self, turn: &mut Turn<'_>, last: &LastDrain) -> Result<NodeEnd, RunStop> {
        let name = turn.name();
        let t0 = tokio::time::Instant::now();
        let row = match self.cluster.node(&name).await {
            Ok(Some(r)) => r,
            Ok(None) => return Ok(NodeEnd::Gone),
            Err(error) => return Err(Halt::ReadNode { node: name, error }.into()),
        };
        if let Some(end) = self.resume(turn, &row).await? {
            return Ok(end);
        }
        let after = self.upgrade(turn, &target(&row)).await?;
        if !self.decide_reboot(turn, &after) {
            return self.done_without_reboot(turn, &row, &after).await;
        }
        if self.cancel.is_cancelled() {
            return self.stop_before_cordon(turn).await;
        }
        // In a batch, the gates and the cordon are one step: the next node's gate counts this
        // one out.
        let take_out = match turn.batch {
            Some(b) => Some(b.take_out.lock().await),
            None => None,
        };
        self.before_taking_out(turn, last).await?;
        let end = self.take_out_and_reboot(turn, &row, take_out).await?;
        if let NodeEnd::Done(_) = end {
            self.step(&name, NodeStep::Patched { elapsed: t0.elapsed() });
        }
        Ok(end)
    }

    /// Between nodes: soak before the next node, if there is one.
    async fn between_nodes(&self, node: &str) -> Result<(), RunStop> {
        let soak = self.cfg.options.soak;
        if lock(&self.next).is_none() || soak == 0 {
            return Ok(());
        }
        self.step(node, NodeStep::Soaking { secs: soak });
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(soak)) => Ok(()),
            _ = self.cancel.cancelled() => Err(RunStop::Interrupted),
        }
    }

    /// A safe point between nodes: stop here if asked to, or if the lock is not ours.
    fn checkpoint(&self) -> Result<(), RunStop> {
        if let Some(reason) = self.lock_lost() {
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
    fn lost(&self, reason: String) -> RunStop {
        lock(&self.lock_lost).get_or_insert(reason.clone());
        if self.fence.auth_failed() {
            return Halt::CredentialsRefused { reason }.into();
        }
        RunStop::LockLost(reason)
    }

    /// Fencing before a destructive step: the lock must be proven ours now.
    async fn fence(&self, step: &str) -> Result<(), RunStop> {
        match self.fence.fence(Duration::ZERO).await {
            Ok(()) => Ok(()),
            Err(e) => Err(self.lost(format!("not {step}: {e}"))),
        }
    }

    /// Write the record before the next side effect. The first failure is said once, and
    /// stops the run at the next safe point ([`Engine::record_stop`]); later writes are still
    /// tried, so that the record on disk is as fresh as it can be.
    fn save(&self, turn: &mut Turn<'_>) {
        if let Err(e) = self.journal.save(&turn.record()) {
            let (what, cause) = (e.to_string(), e.cause());
            if self
                .record_failed
                .set((e.location(), cause.clone(), e.remedy()))
                .is_ok()
            {
                self.tell(Event::Warning(Warning::RecordUnwritable { what, cause }));
            } else {
                self.tell(Event::Detail(Detail::RecordUnwritable { what, cause }));
            }
        }
    }

    /// The stop to give at a safe point once a record write has failed: `what` (e.g. "not
    /// starting another node"), the record's path, the cause, and what to do.
    fn record_stop(&self, what: &str) -> Option<RunStop> {
        let (location, cause, remedy) = self.record_failed.get()?;
        Some(RunStop::RecordUnwritable(format!(
            "{what}: the run record {location} cannot be written ({cause}), and the run does not go on without it; {remedy}, then continue with `aks-patch apply ... --resume`"
        )))
    }

    /// A step of the node's turn begins, in the record.
    fn begin(&self, turn: &mut Turn<'_>, step: StepName) {
        turn.life.begin(step, self.now());
        self.save(turn);
    }

    /// The step begun last ended, in the record.
    fn end(&self, turn: &mut Turn<'_>, outcome: StepOutcome, detail: impl Into<String>) {
        turn.life.end(outcome, detail, self.now());
        self.save(turn);
    }

    /// The time, as records keep it.
    fn now(&self) -> journal::Time {
        self.clock.now()
    }

    fn hook(&self, phase: NodePhase, node: &NodeRecord, reason: Option<&str>) {
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
}
