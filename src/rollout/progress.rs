//! What the rollout tells while it works, as typed events: the progress port. The engine (and
//! the waits before the lock) say what happened ([`Event`]); the layer that prints (the
//! `output` module, above this one) decides the words and where they go (a step line, the
//! live status line, a warning, a `--verbose` note). Tests record the events instead.

use super::blockers::Hold;
use super::gate::Blocker;
use super::journal::UpgradeMode;
use super::proof::NoProof;
use super::stop::{Release, UpgradeStopped};
use crate::kube::drain::DrainEvent;
use crate::kube::reboot::RebootEvent;
use crate::kube::schedule::Stranded;
use crate::node::{PackageLockWait, PackageManager};
use std::time::Duration;

/// Where the rollout's events go.
pub trait Progress: Send + Sync {
    fn tell(&self, event: Event);
}

/// A progress port that drops every event.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn tell(&self, _: Event) {}
}

/// Something the rollout did or saw.
#[derive(Debug, Clone)]
pub enum Event {
    /// Node `index` of `total` (1-based) is taken in hand.
    NodeStarted { node: String, index: usize, total: usize },
    /// What a step of a node's turn did.
    Step { node: String, step: NodeStep },
    /// A wait begins on `node`, for at most `timeout`.
    WaitStarted {
        node: String,
        wait: Wait,
        timeout: Duration,
    },
    /// What the wait on `node` is held up by now.
    WaitProgress { node: String, detail: WaitDetail },
    /// The wait on `node` is over, whatever its outcome (told apart).
    WaitDone { node: String },
    /// How the drain of `node` goes.
    Drain { node: String, event: DrainEvent },
    /// How the reboot of `node` goes.
    Reboot { node: String, event: RebootEvent },
    /// Something holds the rollout (the health gate, the blockers) after `waited`.
    Held(Held),
    /// The blockers that held the rollout cleared.
    BlockersCleared { node: Option<String> },
    /// Worth a warning.
    Warning(Warning),
    /// Worth a note with `--verbose`.
    Detail(Detail),
    /// Batch `index` (1-based) of about `of` (`--max-unavailable`) starts: its nodes, its
    /// zone, and what kept it smaller than the budget.
    BatchStarted {
        index: usize,
        of: usize,
        zone: Option<String>,
        nodes: Vec<String>,
        limits: Vec<crate::rollout::batches::Limit>,
    },
    /// Nodes of the batch's zone took the places its done nodes freed (rolling slots).
    BatchJoined { index: usize, nodes: Vec<String> },
    /// Every node of batch `index` ended its turn.
    BatchDone { index: usize },
    /// Soaking after batch `index` before the next one.
    BatchSoaking { index: usize, secs: u64 },
    /// No node is in hand any more (the run ended or stopped).
    RunOver,
}

/// What a step of a node's turn did.
#[derive(Debug, Clone)]
pub enum NodeStep {
    /// Patched: its proof recorded.
    Done,
    /// Deleted from the cluster since the run began.
    Gone,
    /// Back in service but not proven patched.
    Unproven,
    /// Patched, in this long.
    Patched {
        elapsed: Duration,
    },
    /// A resumed node picked up where the interrupted run left it.
    Resuming(Resumed),
    /// `--upgrade-mode security` on a node that classifies no update as security.
    SecurityAsAll,
    NoSecurityUpdates,
    NoUpdates,
    /// The upgrade starts.
    Upgrading {
        packages: usize,
        mode: UpgradeMode,
        manager: PackageManager,
    },
    /// Signalled while the package manager runs: it is waited for.
    InterruptedDuringUpgrade {
        manager: PackageManager,
    },
    PackagesUpgraded {
        count: usize,
    },
    /// Whether it reboots.
    RebootRequiredBy {
        packages: Vec<String>,
    },
    RebootRequiredButNever,
    NoRebootRequired,
    WaitingForPdbs {
        count: usize,
    },
    /// The node was put back (or could not be).
    Released(Release),
    /// Signalled before the cordon: the node put back first if it was in hand.
    StoppedBeforeCordon {
        release: Option<Release>,
    },
    /// The window closes before the node would be back: its reboot waits (the node put back
    /// first if it was in hand).
    RebootWaitsForWindow {
        release: Option<Release>,
    },
    KuredLockTaken,
    Cordoned {
        cordoned_before: bool,
    },
    Drained {
        evicted: usize,
    },
    DrainInterrupted(Release),
    /// The lock was lost mid-drain.
    DrainStopped(Release),
    StoppedBeforeReboot(Release),
    NotRebootingLockLost(Release),
    Rebooting,
    InterruptedWhileRebooting,
    /// The check after the reboot failed once; tried again for up to `for_up_to`.
    CannotCheckYet {
        error: String,
        for_up_to: Duration,
    },
    /// An unproven node proven on a resume.
    Proven {
        kernel: String,
    },
    /// Downloaded ahead while the previous node rebooted.
    PackagesDownloadedAhead,
    /// `--max-unavailable`: upgraded ahead of its turn (still in service) while `beside`, a
    /// node of its batch, reboots; its turn then only takes it out.
    UpgradingAhead {
        beside: String,
    },
    Soaking {
        secs: u64,
    },
}

/// How a resumed node is picked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resumed {
    WasRebooting,
    LeftOutNotReady,
    /// Stopped around its reboot command, and unreachable now: on its way down.
    RebootSentUnreachable,
    LeftCordonedRebootedSince,
    LeftCordoned,
    Failed,
    Unproven,
}

/// What a wait is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// The package manager to finish.
    Upgrade {
        manager: PackageManager,
    },
    PdbsRecover,
    Evictions,
    Ready,
    /// The health gate or the blockers.
    Hold(HoldKind),
}

/// What holds a wait up now.
#[derive(Debug, Clone)]
pub enum WaitDetail {
    PackageLock(PackageLockWait),
    /// The package manager has the lock now and upgrades.
    Upgrading {
        manager: PackageManager,
    },
}

/// The waits that something may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldKind {
    /// The cluster's health before a node is taken out (`--health-wait`).
    HealthGate,
    /// The operator's blockers (`--blocker-wait`).
    Blockers,
    /// The next batch (`--max-unavailable`): its budget spent, no room for a node's pods, a
    /// PDB that allows no disruption (`--health-wait`).
    Batch,
}

/// What holds, as the wait found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holding {
    Gate(Vec<Blocker>),
    Blockers(Vec<Hold>),
    Batch(Vec<crate::rollout::batches::Hold>),
}

impl Holding {
    pub fn kind(&self) -> HoldKind {
        match self {
            Holding::Gate(_) => HoldKind::HealthGate,
            Holding::Blockers(_) => HoldKind::Blockers,
            Holding::Batch(_) => HoldKind::Batch,
        }
    }
}

/// A hold seen by a wait.
#[derive(Debug, Clone)]
pub struct Held {
    /// The node the wait is for, if it is for one.
    pub node: Option<String>,
    pub holding: Holding,
    pub waited: Duration,
    pub max_wait: Duration,
    /// The first hold of this wait.
    pub first: bool,
    /// What holds differs from what held at the last look.
    pub changed: bool,
}

/// Tracks what held at the last look of a wait, and tells each look.
#[derive(Debug, Default)]
pub struct HoldTracker {
    last: Option<Holding>,
}

impl HoldTracker {
    /// Tell that `holding` holds after `waited` (of at most `max_wait`).
    pub fn show(
        &mut self,
        progress: &dyn Progress,
        node: Option<&str>,
        holding: Holding,
        waited: Duration,
        max_wait: Duration,
    ) {
        let first = self.last.is_none();
        let changed = self.last.as_ref() != Some(&holding);
        self.last = Some(holding.clone());
        progress.tell(Event::Held(Held {
            node: node.map(str::to_string),
            holding,
            waited,
            max_wait,
            first,
            changed,
        }));
    }

    /// Whether anything held at least once.
    pub fn held(&self) -> bool {
        self.last.is_some()
    }
}

/// Worth a warning.
#[derive(Debug, Clone)]
pub enum Warning {
    /// The first write of the run record that failed (what, and the cause): the run stops
    /// at the next safe point.
    RecordUnwritable {
        what: String,
        cause: String,
    },
    KuredLockNotReleased {
        error: String,
    },
    /// Pods with nowhere to go; `--allow-pending-pods` takes the node out anyway.
    PendingPodsAllowed {
        node: String,
        stranded: Vec<Stranded>,
    },
    /// What the drain said about a pod.
    DrainWarning {
        node: String,
        pod: String,
        warning: String,
    },
    /// The second signal: the package manager still runs on the node.
    UpgradeAbandoned(UpgradeStopped),
    CannotCheckAfterReboot {
        node: String,
        error: String,
    },
    NotProvenAfterReboot {
        node: String,
        no: NoProof,
    },
    /// The pending taint could not be put on the nodes to do: evicted pods may move again.
    PendingNotMarked {
        error: String,
    },
    /// The pending taint could not be removed from these nodes at the end of the run.
    PendingNotCleared {
        nodes: Vec<String>,
        error: String,
    },
}

/// Worth a note with `--verbose`.
#[derive(Debug, Clone)]
pub enum Detail {
    /// A later write of the run record that failed too.
    RecordUnwritable {
        what: String,
        cause: String,
    },
    PrefetchFailed {
        node: String,
        error: String,
    },
    ProbeAfterRebootFailed {
        node: String,
        error: String,
        retry_in: Duration,
    },
}
