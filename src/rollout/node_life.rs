//! A node's life in a run: one type owns it ([`NodeLife`]), and its state changes only
//! through [`transition`], a pure function of (where it is, what happened) that refuses what
//! a node's life does not allow.
//!
//! ```text
//! pending ─upgraded→ upgraded ─cordoned→ cordoned ─drained→ drained ─reboot sent→ rebooting
//!    ↑                  │                  (released: back in service, state kept)    │
//!   redo             proven                                                           back
//!    │                  ↓                                                             ↓
//! failed ←──────── (any step) ──────→ done ←─proven── back ──unproven→ unproven ─proven→ done
//! ```
//!
//! `done` takes a [`Proof`] (see [`super::proof`]); `unproven` and `done` need the node put
//! back in service first; `gone` (deleted from the cluster) and `failed` end a turn from any
//! state a turn can be in. The record on disk ([`NodeRecord`]) is what the life writes: the
//! same fields as always.

use super::journal::{Evicted, NodeRecord, NodeState, ObjectRef, Step, StepName, StepOutcome, Time, UpgradedPackage};
use super::proof::Proof;
use crate::kube::drain::WorkloadRef;

/// Where a node's life is: its state, and whether it is out of service in the run's hands,
/// was cordoned before aks-patch came, has rebooted in this run (or the one it resumed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Phase {
    pub state: NodeState,
    pub in_hand: bool,
    pub cordoned_before: bool,
    pub rebooted: bool,
}

/// What happened to a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LifeEvent {
    /// Its upgrade ended well (or it had nothing to install).
    Upgraded,
    /// Cordoned and marked as ours; `cordoned_before`: somebody had cordoned it already
    /// (kept from the first cordon while it stays in hand).
    Cordoned {
        cordoned_before: bool,
    },
    Drained,
    RebootSent,
    /// Back from a reboot: a new bootID, Ready.
    Back,
    /// Found rebooted since an interrupted run left it cordoned (a new bootID).
    RebootedSince,
    /// Put back in service (our mark removed, uncordoned unless cordoned before).
    Released,
    /// Proven patched.
    Proven,
    /// Back in service, not proven patched.
    Unproven,
    Failed,
    /// Deleted from the cluster.
    Gone,
    /// A failed node is done again from its upgrade.
    Redo,
}

/// A change that a node's life does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("internal error: a node in state {} (in hand: {}) cannot take the event {event:?}; the run record is kept as it was", super::journal::enum_text(&from.state), from.in_hand)]
pub struct IllegalTransition {
    pub from: Phase,
    pub event: LifeEvent,
}

/// The states a node's turn ends in: it is not visited again.
pub fn finished(state: NodeState) -> bool {
    matches!(state, NodeState::Done | NodeState::Skipped | NodeState::Gone)
}

/// Where `event` takes a node that is at `from`, or why it cannot.
pub fn transition(from: Phase, event: LifeEvent) -> Result<Phase, IllegalTransition> {
    use LifeEvent as E;
    use NodeState as S;
    let illegal = Err(IllegalTransition { from, event });
    if finished(from.state) {
        return illegal;
    }
    let to = |state| Ok(Phase { state, ..from });
    match (from.state, event) {
        (S::Pending, E::Upgraded) => to(S::Upgraded),
        (S::Upgraded | S::Cordoned | S::Drained, E::Cordoned { cordoned_before }) => Ok(Phase {
            state: S::Cordoned,
            in_hand: true,
            cordoned_before: if from.in_hand {
                from.cordoned_before
            } else {
                cordoned_before
            },
            ..from
        }),
        (S::Cordoned, E::Drained) if from.in_hand => to(S::Drained),
        (S::Drained, E::RebootSent) if from.in_hand => to(S::Rebooting),
        // Back from the reboot this run sent, or (a resume) from one a node left out of
        // service was in.
        (S::Rebooting | S::Back, E::Back) => Ok(Phase {
            state: S::Back,
            rebooted: true,
            ..from
        }),
        (S::Pending | S::Upgraded | S::Cordoned | S::Drained | S::Failed, E::Back) if from.in_hand => Ok(Phase {
            state: S::Back,
            rebooted: true,
            ..from
        }),
        (S::Pending | S::Upgraded | S::Cordoned | S::Drained | S::Failed, E::RebootedSince) if from.in_hand => {
            Ok(Phase { rebooted: true, ..from })
        }
        (_, E::Released) if from.in_hand => Ok(Phase { in_hand: false, ..from }),
        (S::Upgraded | S::Cordoned | S::Drained | S::Back | S::Unproven, E::Proven) if !from.in_hand => to(S::Done),
        (S::Back | S::Unproven, E::Unproven) if !from.in_hand => to(S::Unproven),
        (_, E::Failed) => to(S::Failed),
        (_, E::Gone) => to(S::Gone),
        (S::Failed, E::Redo) => to(S::Pending),
        _ => illegal,
    }
}

/// A node's life in a run: its record, changed only through its events.
#[derive(Debug, Clone)]
pub struct NodeLife {
    rec: NodeRecord,
}

impl NodeLife {
    /// The life as the record has it (a new node, or one a resumed run left).
    pub fn new(rec: NodeRecord) -> NodeLife {
        NodeLife { rec }
    }

    pub fn name(&self) -> &str {
        &self.rec.name
    }

    pub fn phase(&self) -> Phase {
        Phase {
            state: self.rec.state,
            in_hand: self.rec.in_hand,
            cordoned_before: self.rec.was_cordoned,
            rebooted: self.rec.rebooted,
        }
    }

    pub fn state(&self) -> NodeState {
        self.rec.state
    }

    pub fn in_hand(&self) -> bool {
        self.rec.in_hand
    }

    pub fn cordoned_before(&self) -> bool {
        self.rec.was_cordoned
    }

    pub fn rebooted(&self) -> bool {
        self.rec.rebooted
    }

    /// The bootID before the run's reboot (taken at the first cordon).
    pub fn boot_id_before(&self) -> Option<&str> {
        self.rec.boot_id_before.as_deref()
    }

    /// The record as it is now.
    pub fn record(&self) -> &NodeRecord {
        &self.rec
    }

    pub fn into_record(self) -> NodeRecord {
        self.rec
    }

    fn go(&mut self, event: LifeEvent) -> Result<(), IllegalTransition> {
        let to = transition(self.phase(), event)?;
        self.rec.state = to.state;
        self.rec.in_hand = to.in_hand;
        self.rec.was_cordoned = to.cordoned_before;
        self.rec.rebooted = to.rebooted;
        Ok(())
    }

    pub fn upgraded(&mut self) -> Result<(), IllegalTransition> {
        self.go(LifeEvent::Upgraded)
    }

    /// Cordoned and marked. Taken out now (not already in hand): the bootID it had before.
    pub fn cordoned(&mut self, cordoned_before: bool, boot_id: Option<String>) -> Result<(), IllegalTransition> {
        let taken_now = !self.rec.in_hand;
        self.go(LifeEvent::Cordoned { cordoned_before })?;
        if taken_now {
            self.rec.boot_id_before = boot_id;
        }
        Ok(())
    }

    /// Drained: what the drain evicted, and the budgets and workloads to wait for.
    pub fn drained(
        &mut self,
        evicted: Vec<Evicted>,
        pdbs: Vec<ObjectRef>,
        workloads: Vec<WorkloadRef>,
    ) -> Result<(), IllegalTransition> {
        self.go(LifeEvent::Drained)?;
        self.rec.evicted = evicted;
        self.rec.pdbs = pdbs;
        self.rec.workloads = workloads;
        Ok(())
    }

    pub fn reboot_sent(&mut self) -> Result<(), IllegalTransition> {
        self.go(LifeEvent::RebootSent)
    }

    /// Back: its new bootID and the kernel it runs.
    pub fn back(&mut self, boot_id: Option<String>, kernel: Option<String>) -> Result<(), IllegalTransition> {
        self.go(LifeEvent::Back)?;
        self.rec.boot_id_after = boot_id;
        self.rec.kernel_after = kernel;
        Ok(())
    }

    /// Found rebooted since it was left cordoned: its new bootID.
    pub fn rebooted_since(&mut self, boot_id: Option<String>) -> Result<(), IllegalTransition> {
        self.go(LifeEvent::RebootedSince)?;
        self.rec.boot_id_after = boot_id;
        Ok(())
    }

    /// Put back in service: the step that did it (uncordon, or only unmark).
    pub fn released(&mut self, now: Time) -> Result<(), IllegalTransition> {
        self.go(LifeEvent::Released)?;
        self.rec.steps.push(Step {
            name: if self.rec.was_cordoned {
                StepName::Unmark
            } else {
                StepName::Uncordon
            },
            started_at: now,
            finished_at: Some(now),
            outcome: StepOutcome::Ok,
            detail: String::new(),
        });
        Ok(())
    }

    /// Done: only with its proof, kept in the record.
    pub fn done(&mut self, proof: &Proof, now: Time) -> Result<(), IllegalTransition> {
        self.go(LifeEvent::Proven)?;
        self.rec.error = None;
        if let Proof::Rebooted(p) = proof {
            self.rec.boot_id_after = Some(p.boot_id_after().to_string());
        }
        self.rec.kernel_after = Some(proof.kernel().to_string());
        self.rec.proof = Some(proof.record());
        self.rec.finished_at = Some(now);
        Ok(())
    }

    /// Back in service but not proven patched: why.
    pub fn unproven(&mut self, why: String, now: Time) -> Result<(), IllegalTransition> {
        self.go(LifeEvent::Unproven)?;
        self.rec.error = Some(why);
        self.rec.finished_at = Some(now);
        Ok(())
    }

    pub fn failed(&mut self, why: String, now: Time) -> Result<(), IllegalTransition> {
        self.go(LifeEvent::Failed)?;
        self.rec.error = Some(why);
        self.rec.finished_at = Some(now);
        Ok(())
    }

    pub fn gone(&mut self) -> Result<(), IllegalTransition> {
        self.go(LifeEvent::Gone)?;
        self.rec.skip_reason = Some("the node no longer exists (deleted from the cluster)".into());
        Ok(())
    }

    /// A failed node is done again from its upgrade.
    pub fn redo(&mut self) -> Result<(), IllegalTransition> {
        self.go(LifeEvent::Redo)?;
        self.rec.error = None;
        Ok(())
    }

    /// Why the run stopped while this node was in hand, its state unchanged (the lock lost).
    pub fn stopped(&mut self, why: String) {
        self.rec.error = Some(why);
    }

    /// A step of its turn begins.
    pub fn begin(&mut self, step: StepName, now: Time) {
        self.rec.steps.push(Step {
            name: step,
            started_at: now,
            finished_at: None,
            outcome: StepOutcome::Running,
            detail: String::new(),
        });
    }

    /// The step begun last ended.
    pub fn end(&mut self, outcome: StepOutcome, detail: impl Into<String>, now: Time) {
        if let Some(s) = self.rec.steps.last_mut() {
            s.finished_at = Some(now);
            s.outcome = outcome;
            s.detail = detail.into();
        }
    }

    /// Whether it was drained in this turn (or the one resumed).
    pub fn was_drained(&self) -> bool {
        self.rec.steps.iter().any(|s| s.name == StepName::Drain)
    }

    /// The kernel it ran when first probed.
    pub fn kernel_before(&mut self, kernel: &str) {
        self.rec.kernel_before.get_or_insert_with(|| kernel.to_string());
    }

    /// The kernel it was last seen running.
    pub fn kernel_after(&mut self, kernel: &str) {
        self.rec.kernel_after = Some(kernel.to_string());
    }

    /// The end of the package manager's output, kept for the record.
    pub fn upgrade_output(&mut self, tail: String) {
        self.rec.upgrade_output = tail;
    }

    pub fn packages_upgraded(&mut self, packages: Vec<UpgradedPackage>) {
        self.rec.packages_upgraded = packages;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use LifeEvent as E;
    use NodeState as S;

    const STATES: [NodeState; 11] = [
        S::Pending,
        S::Skipped,
        S::Upgraded,
        S::Cordoned,
        S::Drained,
        S::Rebooting,
        S::Back,
        S::Done,
        S::Failed,
        S::Gone,
        S::Unproven,
    ];

    fn events() -> Vec<LifeEvent> {
        vec![
            E::Upgraded,
            E::Cordoned { cordoned_before: false },
            E::Cordoned { cordoned_before: true },
            E::Drained,
            E::RebootSent,
            E::Back,
            E::RebootedSince,
            E::Released,
            E::Proven,
            E::Unproven,
            E::Failed,
            E::Gone,
            E::Redo,
        ]
    }

    fn phases() -> Vec<Phase> {
        let mut out = vec![];
        for state in STATES {
            for bits in 0..8u8 {
                out.push(Phase {
                    state,
                    in_hand: bits & 1 != 0,
                    cordoned_before: bits & 2 != 0,
                    rebooted: bits & 4 != 0,
                });
            }
        }
        out
    }

    /// The table the transition function must follow, written out edge by edge: the
    /// state it leads to, or `None` when refused.
    fn expected(from: Phase, event: LifeEvent) -> Option<Phase> {
        let p = from;
        let active = !matches!(p.state, S::Done | S::Skipped | S::Gone);
        let with = |state: NodeState| Some(Phase { state, ..p });
        match event {
            E::Upgraded if p.state == S::Pending => with(S::Upgraded),
            E::Cordoned { cordoned_before } if matches!(p.state, S::Upgraded | S::Cordoned | S::Drained) => {
                Some(Phase {
                    state: S::Cordoned,
                    in_hand: true,
                    cordoned_before: if p.in_hand { p.cordoned_before } else { cordoned_before },
                    rebooted: p.rebooted,
                })
            }
            E::Drained if p.state == S::Cordoned && p.in_hand => with(S::Drained),
            E::RebootSent if p.state == S::Drained && p.in_hand => with(S::Rebooting),
            E::Back
                if matches!(p.state, S::Rebooting | S::Back)
                    || (p.in_hand
                        && matches!(p.state, S::Pending | S::Upgraded | S::Cordoned | S::Drained | S::Failed)) =>
            {
                Some(Phase {
                    state: S::Back,
                    rebooted: true,
                    ..p
                })
            }
            E::RebootedSince
                if p.in_hand && matches!(p.state, S::Pending | S::Upgraded | S::Cordoned | S::Drained | S::Failed) =>
            {
                Some(Phase { rebooted: true, ..p })
            }
            E::Released if active && p.in_hand => Some(Phase { in_hand: false, ..p }),
            E::Proven
                if !p.in_hand && matches!(p.state, S::Upgraded | S::Cordoned | S::Drained | S::Back | S::Unproven) =>
            {
                with(S::Done)
            }
            E::Unproven if !p.in_hand && matches!(p.state, S::Back | S::Unproven) => with(S::Unproven),
            E::Failed if active => with(S::Failed),
            E::Gone if active => with(S::Gone),
            E::Redo if p.state == S::Failed => with(S::Pending),
            _ => None,
        }
    }

    #[test]
    fn every_legal_edge_is_taken_and_every_other_is_refused() {
        let mut legal = 0;
        for from in phases() {
            for event in events() {
                let got = transition(from, event);
                match expected(from, event) {
                    Some(to) => {
                        legal += 1;
                        assert_eq!(got, Ok(to), "{from:?} --{event:?}-->");
                    }
                    None => assert_eq!(got, Err(IllegalTransition { from, event }), "{from:?} --{event:?}-->"),
                }
            }
        }
        assert!(legal > 100, "the table has edges: {legal}");
    }

    #[test]
    fn a_finished_node_takes_no_event() {
        for state in [S::Done, S::Skipped, S::Gone] {
            for from in phases().into_iter().filter(|p| p.state == state) {
                for event in events() {
                    assert!(transition(from, event).is_err(), "{from:?} {event:?}");
                }
            }
        }
    }

    #[test]
    fn done_and_unproven_need_the_node_back_in_service() {
        for state in [S::Upgraded, S::Back, S::Unproven] {
            let out = Phase {
                state,
                in_hand: true,
                cordoned_before: false,
                rebooted: true,
            };
            assert!(transition(out, E::Proven).is_err(), "{state:?}");
            assert!(transition(out, E::Unproven).is_err(), "{state:?}");
            let released = transition(out, E::Released).unwrap();
            assert!(!released.in_hand);
            assert_eq!(transition(released, E::Proven).unwrap().state, S::Done);
        }
    }

    #[test]
    fn cordoned_before_is_what_the_first_cordon_saw() {
        let upgraded = Phase {
            state: S::Upgraded,
            in_hand: false,
            cordoned_before: false,
            rebooted: false,
        };
        let first = transition(upgraded, E::Cordoned { cordoned_before: true }).unwrap();
        assert!(first.in_hand && first.cordoned_before);
        // Cordoned again on a resume: the node is unschedulable by then because of us.
        let again = transition(first, E::Cordoned { cordoned_before: false }).unwrap();
        assert!(again.cordoned_before, "kept from the first cordon");
    }

    fn life() -> NodeLife {
        NodeLife::new(NodeRecord::new("n0", "p"))
    }

    fn now() -> Time {
        super::super::journal::now()
    }

    #[test]
    fn a_whole_turn_writes_the_record_as_before() {
        let mut l = life();
        l.upgraded().unwrap();
        l.cordoned(false, Some("boot-1".into())).unwrap();
        assert!(l.in_hand());
        l.begin(StepName::Drain, now());
        let web = Evicted {
            namespace: "app".into(),
            name: "web-0".into(),
            created: None,
        };
        l.drained(vec![web], vec![], vec![]).unwrap();
        l.end(StepOutcome::Ok, "1 pod(s) evicted", now());
        assert!(l.was_drained());
        l.reboot_sent().unwrap();
        l.back(Some("boot-2".into()), Some("k2".into())).unwrap();
        assert_eq!(l.state(), S::Back);
        assert!(l.rebooted());
        // Not done while in hand.
        let refused = l.clone().unproven("x".into(), now());
        assert!(refused.is_err());
        l.released(now()).unwrap();
        assert_eq!(l.record().steps.last().unwrap().name, StepName::Uncordon);
        let rec = l.record();
        assert_eq!(rec.boot_id_before.as_deref(), Some("boot-1"));
        assert_eq!(rec.boot_id_after.as_deref(), Some("boot-2"));
        assert_eq!(rec.evicted.len(), 1);
        assert!(!rec.in_hand && rec.rebooted && !rec.was_cordoned);
    }

    #[test]
    fn a_node_cordoned_before_is_only_unmarked() {
        let mut l = life();
        l.upgraded().unwrap();
        l.cordoned(true, Some("boot-1".into())).unwrap();
        l.released(now()).unwrap();
        assert_eq!(l.record().steps.last().unwrap().name, StepName::Unmark);
        assert!(l.cordoned_before());
    }

    #[test]
    fn a_refused_event_leaves_the_record_as_it_was() {
        let mut l = life();
        let before = l.record().clone();
        let e = l.reboot_sent().unwrap_err();
        assert_eq!(e.event, E::RebootSent);
        assert_eq!(l.record(), &before);
        assert!(e.to_string().contains("state pending"), "{e}");
    }

    #[test]
    fn a_failed_node_is_redone_from_its_upgrade() {
        let mut l = life();
        l.failed("apt-get exit 100".into(), now()).unwrap();
        assert_eq!(l.record().error.as_deref(), Some("apt-get exit 100"));
        l.redo().unwrap();
        assert_eq!(l.state(), S::Pending);
        assert!(l.record().error.is_none());
        l.upgraded().unwrap();
    }
}
