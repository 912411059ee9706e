//! The rollout's events and stops for people: the words of each progress event (the
//! [`Progress`] port, implemented by the [`Reporter`]) and the exit code of each way a run
//! stops.

use super::reporter::Reporter;
use super::Exit;
use crate::kube::drain::DrainEvent;
use crate::kube::pending::{CLEAR_PENDING_BY_HAND, PENDING_TAINT};
use crate::kube::reboot::RebootEvent;
use crate::node::PackageManager;
use crate::rollout::blockers::holds_text;
use crate::rollout::gate::blockers_text;
use crate::rollout::journal::enum_text;
use crate::rollout::preflight::nowhere_to_go_text;
use crate::rollout::progress::{
    Detail, Event, Held, HoldKind, Holding, NodeStep, Progress, Resumed, Wait, WaitDetail, Warning,
};
use crate::rollout::stop::{tool_name, AndRelease, RunStop};

/// Where a node of a batch is, after this event (`None`: no change).
fn batch_phase(event: &Event) -> Option<(&str, &'static str)> {
    match event {
        Event::Step { node, step } => match step {
            NodeStep::Cordoned { .. } => Some((node, "draining")),
            NodeStep::Rebooting => Some((node, "rebooting")),
            NodeStep::Done => Some((node, "done")),
            NodeStep::Gone | NodeStep::Unproven => Some((node, "stopped")),
            _ => None,
        },
        Event::Reboot {
            node,
            event: RebootEvent::Back { .. },
        } => Some((node, "back")),
        Event::Held(Held { node: Some(node), .. }) => Some((node, "waiting")),
        _ => None,
    }
}

impl Progress for Reporter {
    fn tell(&self, event: Event) {
        if let Some((node, phase)) = batch_phase(&event) {
            self.batch_phase(node, phase);
        }
        match event {
            Event::NodeStarted { node, index, total } => self.node_started(&node, index, total),
            Event::Step { node, step } => self.step(&node, &step_text(&step)),
            Event::WaitStarted { node, wait, timeout } => self.wait_started(&node, &wait_text(wait), timeout),
            Event::WaitProgress { node, detail } => self.wait_progress(&node, &detail_text(&detail)),
            Event::WaitDone { node } => self.wait_done(&node),
            Event::Drain { node, event } => self.drain(&node, event),
            Event::Reboot { node, event } => self.reboot(&node, event),
            Event::Held(held) => self.held(held),
            Event::BlockersCleared { node } => {
                self.info("the blockers cleared");
                if let Some(n) = node {
                    self.wait_done(&n);
                }
            }
            Event::Warning(w) => self.warn(&warning_text(&w)),
            Event::Detail(d) => self.verbose(&detail_note(&d)),
            Event::BatchStarted {
                index,
                of,
                zone,
                nodes,
                limits,
            } => {
                let zone = zone.map(|z| format!(" (zone {z})")).unwrap_or_default();
                let limits: Vec<String> = limits.iter().map(|l| l.to_string()).collect();
                let smaller = if limits.is_empty() {
                    String::new()
                } else {
                    format!("; smaller because {}", limits.join("; "))
                };
                self.info(&format!(
                    "batch {index} of {of}{zone}: {} node(s): {}{smaller}",
                    nodes.len(),
                    nodes.join(", ")
                ));
                self.batch_started(index, of, zone, nodes);
            }
            Event::BatchJoined { index, nodes } => {
                self.info(&format!(
                    "batch {index}: {} join(s) it in the place(s) freed: {}",
                    nodes.len(),
                    nodes.join(", ")
                ));
                self.batch_joined(nodes);
            }
            Event::BatchDone { index } => self.batch_done(index),
            Event::BatchSoaking { index, secs } => self.info(&format!(
                "batch {index} done; soaking {secs}s before the next batch (--soak)"
            )),
            Event::RunOver => self.status_done(),
        }
    }
}

impl Reporter {
    fn drain(&self, node: &str, event: DrainEvent) {
        match event {
            DrainEvent::Planned { evict, skipped } => self.step(
                node,
                &format!("draining: {evict} pod(s) to evict, {skipped} skipped (DaemonSet, mirror)"),
            ),
            DrainEvent::EvictionRefused { pod, pdb, retry_in, .. } => {
                let pdb = pdb.unwrap_or_else(|| "?".into());
                self.wait_progress(node, &format!("PDB {}/{pdb} allows 0, retrying", pod.namespace));
                self.step(
                    node,
                    &format!(
                        "eviction of {pod} refused by PodDisruptionBudget {pdb}; retrying in {}s",
                        retry_in.as_secs()
                    ),
                )
            }
            DrainEvent::Evicted { pod } => self.verbose(&format!("{node}: evicted {pod}")),
            _ => {}
        }
    }

    fn reboot(&self, node: &str, event: RebootEvent) {
        match event {
            RebootEvent::WentNotReady { ready } => {
                self.wait_progress(node, "down");
                self.step(
                    node,
                    &format!("went down (Ready={})", ready.condition_status().unwrap_or_default()),
                )
            }
            RebootEvent::Booted { .. } => {
                self.wait_progress(node, "booted, waiting for Ready");
                self.step(node, "booted (new bootID)")
            }
            RebootEvent::Back { elapsed } => self.step(node, &format!("Ready again after {}s", elapsed.as_secs())),
            RebootEvent::ReadFailed { error } => {
                self.verbose(&format!("{node}: reading the node failed ({error}); still waiting"))
            }
        }
    }

    /// Something holds the rollout: on the node's wait line what holds now; a warning each
    /// time that changes; the progress bar's message otherwise.
    fn held(&self, h: Held) {
        let kind = h.holding.kind();
        let (flag, before, label) = match kind {
            HoldKind::HealthGate => ("--health-wait", "before taking another node out", "health gate"),
            HoldKind::Blockers => ("--blocker-wait", "before taking a node out", "blockers"),
            HoldKind::Batch => ("--health-wait", "before starting the next batch", "next batch"),
        };
        let text = match &h.holding {
            Holding::Gate(blockers) => blockers_text(blockers),
            Holding::Blockers(holds) => holds_text(holds),
            Holding::Batch(holds) => holds.iter().map(|h| h.to_string()).collect::<Vec<_>>().join("; "),
        };
        if let Some(n) = &h.node {
            if h.first {
                self.wait_started(n, &wait_text(Wait::Hold(kind)), h.max_wait);
            }
            self.wait_progress(n, &text);
        }
        if h.changed {
            self.warn(&format!(
                "waiting (up to {}s, {flag}) {before}: {text}",
                h.max_wait.as_secs()
            ));
        } else {
            self.set_message(format!(
                "{label}: waiting {}s / {}s: {text}",
                h.waited.as_secs(),
                h.max_wait.as_secs()
            ));
        }
    }
}

fn manager_waits(manager: PackageManager) -> &'static str {
    match manager {
        PackageManager::Tdnf => "waiting for dnf-automatic if it runs",
        _ => "waiting for the dpkg lock if held",
    }
}

/// What a step of a node's turn did, as its step line says it.
pub fn step_text(step: &NodeStep) -> String {
    match step {
        NodeStep::Done => "done".into(),
        NodeStep::Gone => "no longer exists: recorded as gone, skipped".into(),
        NodeStep::Unproven => "unproven: not reported patched".into(),
        NodeStep::Patched { elapsed } => format!("patched in {}s", elapsed.as_secs()),
        NodeStep::Resuming(r) => match r {
            Resumed::WasRebooting => "resuming: the node was rebooting when the last run stopped",
            Resumed::LeftOutNotReady => {
                "resuming: the node was left out of service and is not Ready: waiting for it to come back"
            }
            Resumed::RebootSentUnreachable => {
                "resuming: the last run stopped as it sent the node's reboot, and the node cannot be reached: waiting for it to come back"
            }
            Resumed::LeftCordonedRebootedSince => {
                "resuming: the node was left cordoned and has rebooted since (new bootID)"
            }
            Resumed::LeftCordoned => "resuming: the node was left cordoned by the interrupted run",
            Resumed::Failed => "resuming: the node failed in the last run; redoing it from the upgrade",
            Resumed::Unproven => {
                "resuming: the node rebooted in the last run but was not proven patched; proving it first (no cordon, no reboot)"
            }
        }
        .into(),
        NodeStep::SecurityAsAll => {
            "Azure Linux classifies no update as security: installing all updates (--azure-linux-security-as-all)"
                .into()
        }
        NodeStep::NoSecurityUpdates => "no security updates pending".into(),
        NodeStep::NoUpdates => "no updates pending".into(),
        NodeStep::Upgrading {
            packages,
            mode,
            manager,
        } => format!(
            "upgrading {packages} package(s) ({} mode; {})",
            enum_text(mode),
            manager_waits(*manager)
        ),
        NodeStep::InterruptedDuringUpgrade { manager } => format!(
            "interrupted: waiting for {} to finish on the node (it is never cut off half-way); interrupt again to stop waiting",
            tool_name(*manager)
        ),
        NodeStep::PackagesUpgraded { count } => format!("{count} package(s) upgraded"),
        NodeStep::RebootRequiredBy { packages } => format!("reboot required by {}", packages.join(", ")),
        NodeStep::RebootRequiredButNever => "reboot required, but --reboot never".into(),
        NodeStep::NoRebootRequired => "no reboot required".into(),
        NodeStep::WaitingForPdbs { count } => format!(
            "waiting for {count} PodDisruptionBudget(s) of the last drain to allow disruptions again"
        ),
        NodeStep::Released(r) => r.to_string(),
        NodeStep::StoppedBeforeCordon { release } => format!("stopping before the cordon{}", AndRelease(release)),
        NodeStep::RebootWaitsForWindow { release } => format!(
            "its packages are upgraded; the reboot waits for the next window{}",
            AndRelease(release)
        ),
        NodeStep::KuredLockTaken => "took kured's reboot lock so that kured waits".into(),
        NodeStep::Cordoned { cordoned_before: true } => "already cordoned (by someone else): it will stay cordoned".into(),
        NodeStep::Cordoned { cordoned_before: false } => "cordoned".into(),
        NodeStep::Drained { evicted } => format!("drained: {evicted} pod(s) evicted"),
        NodeStep::DrainInterrupted(r) => format!("drain interrupted; {r}"),
        NodeStep::DrainStopped(r) => format!("drain stopped; {r}"),
        NodeStep::StoppedBeforeReboot(r) => format!("stopping before the reboot; {r}"),
        NodeStep::NotRebootingLockLost(r) => format!("not rebooting: the lock is not ours; {r}"),
        NodeStep::Rebooting => "rebooting".into(),
        NodeStep::InterruptedWhileRebooting => {
            "interrupted while rebooting: waiting for the node to come back before stopping".into()
        }
        NodeStep::CannotCheckYet { error, for_up_to } => format!(
            "cannot check the node after the reboot yet ({error}); trying again for up to {}s",
            for_up_to.as_secs()
        ),
        NodeStep::Proven { kernel } => {
            format!("proven: new bootID, Ready, marker gone, nothing pending, running {kernel}")
        }
        NodeStep::PackagesDownloadedAhead => "packages downloaded ahead, while the previous node reboots".into(),
        NodeStep::UpgradingAhead { beside } => {
            format!("upgrading ahead of its turn, in service, while {beside} reboots; its turn only takes it out")
        }
        NodeStep::Soaking { secs } => format!("soaking {secs}s before the next node"),
    }
}

/// What a wait is for: `waiting for WHAT`.
fn wait_text(wait: Wait) -> String {
    match wait {
        Wait::Upgrade { manager } => format!("{} to finish", tool_name(manager)),
        Wait::PdbsRecover => "PodDisruptionBudgets to allow disruptions".into(),
        Wait::Evictions => "evictions".into(),
        Wait::Ready => "Ready".into(),
        Wait::Hold(HoldKind::HealthGate) => "the cluster to be healthy".into(),
        Wait::Hold(HoldKind::Blockers) => "the blockers to clear".into(),
        Wait::Hold(HoldKind::Batch) => "room for the next batch".into(),
    }
}

fn detail_text(detail: &WaitDetail) -> String {
    match detail {
        WaitDetail::PackageLock(w) => w.to_string(),
        WaitDetail::Upgrading { manager } => {
            format!("{} has the lock and is upgrading", tool_name(*manager))
        }
    }
}

fn warning_text(w: &Warning) -> String {
    match w {
        Warning::RecordUnwritable { what, cause } => format!(
            "{what}: {cause}; the run stops at the next safe point (a node out of service is finished first)"
        ),
        Warning::KuredLockNotReleased { error } => format!(
            "could not release kured's lock: {error}; clear the annotation weave.works/kured-node-lock on DaemonSet kube-system/kured"
        ),
        Warning::PendingPodsAllowed { node, stranded } => format!(
            "{} (--allow-pending-pods: the node is taken out anyway)",
            nowhere_to_go_text(node, stranded)
        ),
        Warning::DrainWarning { node, pod, warning } => format!("{node}: {pod}: {warning}"),
        Warning::UpgradeAbandoned(why) => why.to_string(),
        Warning::CannotCheckAfterReboot { node, error } => {
            format!("{node}: cannot check the reboot marker after the reboot: {error}")
        }
        Warning::NotProvenAfterReboot { node, no } => format!("{node}: {no} after the reboot"),
        Warning::PendingNotMarked { error } => format!(
            "could not put the pending taint {PENDING_TAINT} on the nodes to patch: {error}; the run goes on, and pods it evicts may land on nodes patched later and move again"
        ),
        Warning::PendingNotCleared { nodes, error } => format!(
            "could not remove the pending taint {PENDING_TAINT} from {}: {error}; it only makes the scheduler prefer other nodes; the next run removes it, or remove it now with `{CLEAR_PENDING_BY_HAND}`",
            nodes.join(", ")
        ),
    }
}

fn detail_note(d: &Detail) -> String {
    match d {
        Detail::RecordUnwritable { what, cause } => format!("{what}: {cause}"),
        Detail::PrefetchFailed { node, error } => {
            format!("{node}: downloading ahead failed ({error}); the upgrade will download")
        }
        Detail::ProbeAfterRebootFailed { node, error, retry_in } => format!(
            "{node}: probing after the reboot failed ({error}); trying again in {}s",
            retry_in.as_secs_f64()
        ),
    }
}

impl From<&RunStop> for Exit {
    /// The exit code of a run that stopped this way.
    fn from(stop: &RunStop) -> Exit {
        match stop {
            RunStop::Interrupted => Exit::Interrupted,
            RunStop::Failed(h) if h.credentials_refused() => Exit::Auth,
            RunStop::Failed(_) => Exit::NodesFailed,
            RunStop::Refused(_) => Exit::Usage,
            RunStop::KuredRebooting(_) | RunStop::LockLost(_) => Exit::LockHeld,
            RunStop::OutsideWindow(_) => Exit::OutsideWindow,
            RunStop::Blocked(_) => Exit::Blocked,
            RunStop::RecordUnwritable(_) | RunStop::Illegal(_) => Exit::Failure,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::reporter::Verbosity;
    use crate::rollout::gate::{Blocker, GateStop};
    use crate::rollout::ports::PortError;
    use crate::rollout::progress::HoldTracker;
    use crate::rollout::stop::{Halt, Release};
    use std::time::Duration;

    #[test]
    fn a_hold_warns_when_what_holds_changes_and_shows_on_the_node_line() {
        let (r, c) = Reporter::capture(Verbosity::Normal);
        let down = |n: &str| {
            Holding::Gate(vec![Blocker::NodeDown {
                node: n.into(),
                why: "NotReady".into(),
            }])
        };
        let mut t = HoldTracker::default();
        let max = Duration::from_secs(600);
        assert!(!t.held());
        t.show(&r, Some("n1"), down("n2"), Duration::ZERO, max);
        t.show(&r, Some("n1"), down("n2"), Duration::from_secs(1), max);
        t.show(&r, Some("n1"), down("n3"), Duration::from_secs(2), max);
        assert!(t.held());
        assert_eq!(
            c.text(),
            "[00:00] n1: waiting for the cluster to be healthy (up to 10:00)\n\
             [00:00] n1: node n2 is NotReady\n\
             warning: waiting (up to 600s, --health-wait) before taking another node out: node n2 is NotReady\n\
             [00:00] n1: node n3 is NotReady\n\
             warning: waiting (up to 600s, --health-wait) before taking another node out: node n3 is NotReady\n"
        );
    }

    #[test]
    fn a_step_that_put_a_node_back_says_how() {
        let (r, c) = Reporter::capture(Verbosity::Normal);
        let step = |step| Event::Step {
            node: "n0".into(),
            step,
        };
        r.tell(step(NodeStep::Cordoned { cordoned_before: true }));
        r.tell(step(NodeStep::StoppedBeforeCordon { release: None }));
        r.tell(step(NodeStep::RebootWaitsForWindow {
            release: Some(Release::Uncordoned { node: "n0".into() }),
        }));
        assert_eq!(
            c.text(),
            "[00:00] n0: already cordoned (by someone else): it will stay cordoned\n\
             [00:00] n0: stopping before the cordon\n\
             [00:00] n0: its packages are upgraded; the reboot waits for the next window; node n0 uncordoned\n"
        );
    }

    #[test]
    fn each_way_a_run_stops_has_its_exit_code() {
        let auth = PortError::auth("HTTP 401 Unauthorized");
        let cordon = |error| {
            RunStop::from(Halt::Cordon {
                node: "n0".into(),
                error,
                release: None,
            })
        };
        assert_eq!(Exit::from(&cordon(auth.clone())), Exit::Auth);
        assert_eq!(Exit::from(&cordon(PortError::new("HTTP 500"))), Exit::NodesFailed);
        assert_eq!(
            Exit::from(&RunStop::from(Halt::Unhealthy {
                node: "n0".into(),
                gate: GateStop::Failed(auth),
                release: None
            })),
            Exit::Auth
        );
        assert_eq!(Exit::from(&RunStop::Interrupted), Exit::Interrupted);
        assert_eq!(Exit::from(&RunStop::Refused("x".into())), Exit::Usage);
        assert_eq!(Exit::from(&RunStop::KuredRebooting("x".into())), Exit::LockHeld);
        assert_eq!(Exit::from(&RunStop::LockLost("x".into())), Exit::LockHeld);
        assert_eq!(Exit::from(&RunStop::OutsideWindow("x".into())).code(), 8);
        assert_eq!(Exit::from(&RunStop::Blocked("x".into())).code(), 9);
        assert_eq!(Exit::from(&RunStop::RecordUnwritable("x".into())), Exit::Failure);
    }
}
